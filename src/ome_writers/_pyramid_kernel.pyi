from _typeshed import ReadableBuffer, WriteableBuffer

def reduce(
    src0: ReadableBuffer,
    src1: ReadableBuffer | None,
    out: WriteableBuffer,
    dtype_char: str,
    method: int,
    /,
) -> None: ...
def write_halving(
    fd: int,
    chunks: ReadableBuffer,
    out: WriteableBuffer,
    piece_rows: int,
    dtype_char: str,
    method: int,
    /,
) -> None: ...
