from _typeshed import ReadableBuffer, WriteableBuffer

def copy_to_chunk_order(
    frame: ReadableBuffer,
    out: WriteableBuffer,
    rows: int,
    chunk_rows: int,
    chunk_row_bytes: int,
    /,
) -> bool: ...
