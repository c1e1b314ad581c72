/*
 * ome_writers._pyramid_kernel: one pyramid level from the level above it.
 *
 * Why this is C: numpy builds a 2 x 2 mean of a 2048 x 2048 uint16 frame
 * from eight strided temporaries (shifts, masks, sums): about 25 ms here,
 * three times what writing the frame's file costs. This loop reads each
 * source row pair once and writes the output row once: about 1.5 ms, with
 * the GIL released, so the writer threads that call it run on both cores.
 *
 * reduce(src0, src1, out, dtype, method): src0 (and src1, the next z plane,
 * or None) are 2D buffers of `rows` x `cols` items whose rows may be
 * strided (items within a row contiguous). An odd last row or column is
 * paired with itself. out is a 2D buffer of ceil(rows / 2) x ceil(cols / 2)
 * items (rows may be strided: a tile of a larger frame). dtype is a numpy
 * type character (bBhHiIlLqQfd, native byte order), method 0 mean,
 * 1 decimate, 2 min, 3 max.
 *
 * The mean is exactly what ome_writers._pyramid.reduce_blocks computes:
 * integers as floor((sum + n/2) / n), summed as n * (x >> s) + (x & (n-1))
 * so that nothing overflows the type; floats summed in double in row-major
 * order of the block (plane 0 first), times 1/n, cast back.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#ifdef _WIN32
#include <io.h>
#define write_fd(fd, p, n) _write((fd), (p), (unsigned int)(n))
#else
#include <unistd.h>
#define write_fd(fd, p, n) write((fd), (p), (size_t)(n))
#endif

#define ROW(base, stride, r) ((const char *)(base) + (Py_ssize_t)(r) * (stride))

#define DEFINE_INT(NAME, T)                                                   \
    static void NAME(const char *a, const char *b, Py_ssize_t sa,             \
                     Py_ssize_t sb, char *out, Py_ssize_t so,                 \
                     Py_ssize_t rows, Py_ssize_t cols, int method)            \
    {                                                                         \
        const Py_ssize_t orows = (rows + 1) / 2, ocols = (cols + 1) / 2;      \
        const int planes = b ? 2 : 1;                                         \
        const int shift = b ? 3 : 2;                                          \
        const T mask = (T)((1 << shift) - 1);                                 \
        const T half = (T)(1 << (shift - 1));                                 \
        for (Py_ssize_t i = 0; i < orows; i++) {                              \
            const Py_ssize_t r0 = 2 * i, r1 = (2 * i + 1 < rows) ? r0 + 1 : r0; \
            const T *p[4];                                                    \
            p[0] = (const T *)ROW(a, sa, r0);                                 \
            p[1] = (const T *)ROW(a, sa, r1);                                 \
            p[2] = b ? (const T *)ROW(b, sb, r0) : NULL;                      \
            p[3] = b ? (const T *)ROW(b, sb, r1) : NULL;                      \
            T *o = (T *)(out + i * so);                                       \
            const Py_ssize_t full = cols / 2;                                 \
            if (method == 1) {                                                \
                for (Py_ssize_t j = 0; j < ocols; j++) o[j] = p[0][2 * j];    \
                continue;                                                     \
            }                                                                 \
            if (method == 0 && planes == 1) {                                 \
                const T *x = p[0], *y = p[1];                                 \
                for (Py_ssize_t j = 0; j < full; j++) {                       \
                    T v0 = x[2 * j], v1 = x[2 * j + 1];                       \
                    T v2 = y[2 * j], v3 = y[2 * j + 1];                       \
                    T high = (T)((v0 >> 2) + (v1 >> 2) + (v2 >> 2) + (v3 >> 2)); \
                    T low = (T)((v0 & 3) + (v1 & 3) + (v2 & 3) + (v3 & 3));   \
                    o[j] = (T)(high + ((T)(low + 2) >> 2));                   \
                }                                                             \
                if (full < ocols) {                                           \
                    T v0 = x[cols - 1], v2 = y[cols - 1];                     \
                    T high = (T)((v0 >> 2) + (v0 >> 2) + (v2 >> 2) + (v2 >> 2)); \
                    T low = (T)((v0 & 3) + (v0 & 3) + (v2 & 3) + (v2 & 3));   \
                    o[full] = (T)(high + ((T)(low + 2) >> 2));                \
                }                                                             \
                continue;                                                     \
            }                                                                 \
            for (Py_ssize_t j = 0; j < ocols; j++) {                          \
                const Py_ssize_t c0 = 2 * j;                                  \
                const Py_ssize_t c1 = (c0 + 1 < cols) ? c0 + 1 : c0;          \
                T v[8];                                                       \
                int n = 0;                                                    \
                for (int k = 0; k < 2 * planes; k++) {                        \
                    v[n++] = p[k][c0];                                        \
                    v[n++] = p[k][c1];                                        \
                }                                                             \
                T r = v[0];                                                   \
                if (method == 2) {                                            \
                    for (int k = 1; k < n; k++) r = v[k] < r ? v[k] : r;      \
                } else if (method == 3) {                                     \
                    for (int k = 1; k < n; k++) r = v[k] > r ? v[k] : r;      \
                } else {                                                      \
                    T high = 0, low = 0;                                      \
                    for (int k = 0; k < n; k++) {                             \
                        high = (T)(high + (T)(v[k] >> shift));                \
                        low = (T)(low + (T)(v[k] & mask));                    \
                    }                                                         \
                    r = (T)(high + ((T)(low + half) >> shift));               \
                }                                                             \
                o[j] = r;                                                     \
            }                                                                 \
        }                                                                     \
    }

#define DEFINE_FLOAT(NAME, T)                                                 \
    static void NAME(const char *a, const char *b, Py_ssize_t sa,             \
                     Py_ssize_t sb, char *out, Py_ssize_t so,                 \
                     Py_ssize_t rows, Py_ssize_t cols, int method)            \
    {                                                                         \
        const Py_ssize_t orows = (rows + 1) / 2, ocols = (cols + 1) / 2;      \
        const int planes = b ? 2 : 1;                                         \
        const double scale = b ? 0.125 : 0.25;                                \
        for (Py_ssize_t i = 0; i < orows; i++) {                              \
            const Py_ssize_t r0 = 2 * i, r1 = (2 * i + 1 < rows) ? r0 + 1 : r0; \
            const T *p[4];                                                    \
            p[0] = (const T *)ROW(a, sa, r0);                                 \
            p[1] = (const T *)ROW(a, sa, r1);                                 \
            p[2] = b ? (const T *)ROW(b, sb, r0) : NULL;                      \
            p[3] = b ? (const T *)ROW(b, sb, r1) : NULL;                      \
            T *o = (T *)(out + i * so);                                       \
            for (Py_ssize_t j = 0; j < ocols; j++) {                          \
                const Py_ssize_t c0 = 2 * j;                                  \
                const Py_ssize_t c1 = (c0 + 1 < cols) ? c0 + 1 : c0;          \
                if (method == 1) {                                            \
                    o[j] = p[0][c0];                                          \
                    continue;                                                 \
                }                                                             \
                T v[8];                                                       \
                int n = 0;                                                    \
                for (int k = 0; k < 2 * planes; k++) {                        \
                    v[n++] = p[k][c0];                                        \
                    v[n++] = p[k][c1];                                        \
                }                                                             \
                if (method == 0) {                                            \
                    double s = (double)v[0];                                  \
                    for (int k = 1; k < n; k++) s = s + (double)v[k];         \
                    o[j] = (T)(s * scale);                                    \
                } else {                                                      \
                    /* numpy's minimum/maximum: a NaN wins */                 \
                    T r = v[0];                                               \
                    for (int k = 1; k < n; k++) {                             \
                        T x = v[k];                                           \
                        if (r != r) break;                                    \
                        if (x != x) { r = x; break; }                         \
                        r = (method == 2) ? (x < r ? x : r) : (x > r ? x : r); \
                    }                                                         \
                    o[j] = r;                                                 \
                }                                                             \
            }                                                                 \
        }                                                                     \
    }

DEFINE_INT(reduce_i8, int8_t)
DEFINE_INT(reduce_u8, uint8_t)
DEFINE_INT(reduce_i16, int16_t)
DEFINE_INT(reduce_u16, uint16_t)
DEFINE_INT(reduce_i32, int32_t)
DEFINE_INT(reduce_u32, uint32_t)
DEFINE_INT(reduce_i64, int64_t)
DEFINE_INT(reduce_u64, uint64_t)
DEFINE_FLOAT(reduce_f32, float)
DEFINE_FLOAT(reduce_f64, double)

typedef void (*reducer)(const char *, const char *, Py_ssize_t, Py_ssize_t,
                        char *, Py_ssize_t, Py_ssize_t, Py_ssize_t, int);

static reducer pick(char code, Py_ssize_t *itemsize)
{
    switch (code) {
    case 'b': *itemsize = 1; return reduce_i8;
    case 'B': *itemsize = 1; return reduce_u8;
    case 'h': *itemsize = 2; return reduce_i16;
    case 'H': *itemsize = 2; return reduce_u16;
    case 'i': *itemsize = 4; return reduce_i32;
    case 'I': *itemsize = 4; return reduce_u32;
    case 'l':
    case 'q': *itemsize = 8; return reduce_i64;
    case 'L':
    case 'Q': *itemsize = 8; return reduce_u64;
    case 'f': *itemsize = 4; return reduce_f32;
    case 'd': *itemsize = 8; return reduce_f64;
    default: return NULL;
    }
}

/* The reducer of dtype character code and method, or NULL with ValueError. */
static reducer pick_checked(int code, int method, Py_ssize_t *itemsize)
{
    reducer fn = pick((char)code, itemsize);
    if (fn == NULL || method < 0 || method > 3) {
        PyErr_Format(PyExc_ValueError,
                     "dtype character %c / method %d is not supported; use one "
                     "of 'bBhHiIlLqQfd' and a method 0-3", code, method);
        return NULL;
    }
    return fn;
}

static int get_plane(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize,
                     const char *what, int flags)
{
    if (PyObject_GetBuffer(obj, view, flags) < 0) return -1;
    if (view->ndim != 2 || view->strides[1] != itemsize ||
        view->itemsize != itemsize || view->strides[0] < view->shape[1] * itemsize) {
        PyErr_Format(PyExc_ValueError,
                     "%s must be a 2D buffer of %zd-byte items whose rows are "
                     "contiguous; pass np.ascontiguousarray(...) instead",
                     what, itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(reduce_doc,
"reduce(src0, src1, out, dtype_char, method, /)\n"
"--\n\n"
"Halve src0 (2D, rows contiguous) into out (2D, ceil halves);\n"
"src1 (same shape, or None) is the next z plane. method: 0 mean,\n"
"1 decimate, 2 min, 3 max. See the source's header for the rounding.");

static PyObject *reduce(PyObject *self, PyObject *args)
{
    PyObject *src0_obj, *src1_obj, *out_obj;
    int code, method;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOCi:reduce", &src0_obj, &src1_obj, &out_obj,
                          &code, &method)) {
        return NULL;
    }
    Py_ssize_t itemsize = 0;
    reducer fn = pick_checked(code, method, &itemsize);
    if (fn == NULL) return NULL;
    Py_buffer a, b, out;
    int has_b = src1_obj != Py_None;
    if (get_plane(src0_obj, &a, itemsize, "src0", PyBUF_STRIDED_RO) < 0) return NULL;
    if (has_b && get_plane(src1_obj, &b, itemsize, "src1", PyBUF_STRIDED_RO) < 0) {
        PyBuffer_Release(&a);
        return NULL;
    }
    if (get_plane(out_obj, &out, itemsize, "out", PyBUF_STRIDED) < 0) {
        PyBuffer_Release(&a);
        if (has_b) PyBuffer_Release(&b);
        return NULL;
    }
    PyObject *result = NULL;
    const Py_ssize_t rows = a.shape[0], cols = a.shape[1];
    const Py_ssize_t orows = (rows + 1) / 2, ocols = (cols + 1) / 2;
    if (has_b && (b.shape[0] != rows || b.shape[1] != cols)) {
        PyErr_SetString(PyExc_ValueError,
                        "src1 must have the shape of src0 (the next z plane)");
        goto done;
    }
    if (out.shape[0] != orows || out.shape[1] != ocols) {
        PyErr_Format(PyExc_ValueError,
                     "out has shape (%zd, %zd); halving %zd x %zd items gives "
                     "(%zd, %zd): give an output of shape (ceil(rows / 2), "
                     "ceil(cols / 2))",
                     out.shape[0], out.shape[1], rows, cols, orows, ocols);
        goto done;
    }
    if (rows > 0 && cols > 0) {
        const char *pa = (const char *)a.buf;
        const char *pb = has_b ? (const char *)b.buf : NULL;
        Py_ssize_t sa = a.strides[0], sb = has_b ? b.strides[0] : 0;
        char *po = (char *)out.buf;
        Py_ssize_t so = out.strides[0];
        Py_BEGIN_ALLOW_THREADS
        fn(pa, pb, sa, sb, po, so, rows, cols, method);
        Py_END_ALLOW_THREADS
    }
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&out);
    if (has_b) PyBuffer_Release(&b);
    PyBuffer_Release(&a);
    return result;
}

/* All of p[0:n] to fd; 0, or the errno of the failed write. */
static int write_all(int fd, const char *p, Py_ssize_t n)
{
    while (n > 0) {
        Py_ssize_t step = n > (1 << 30) ? (1 << 30) : n;
        Py_ssize_t done = (Py_ssize_t)write_fd(fd, p, step);
        if (done < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (done == 0) return ENOSPC;
        p += done;
        n -= done;
    }
    return 0;
}

PyDoc_STRVAR(write_halving_doc,
"write_halving(fd, chunks, out, piece_rows, dtype_char, method, /)\n"
"--\n\n"
"Write chunks (4D, C-contiguous: chunk Y, chunk X, rows, columns) to fd\n"
"piece_rows rows of one chunk at a time and halve each piece into out\n"
"right after its write, while it is in the CPU's cache. out is the\n"
"level below (4D, rows may be strided): chunk (i, j), halved to\n"
"(rows / 2, columns / 2), lands at global row i * rows / 2 and column\n"
"j * columns / 2 of out's chunk grid. Raises OSError (nothing more is\n"
"written) or ValueError (before anything is written).");

static PyObject *write_halving(PyObject *self, PyObject *args)
{
    PyObject *src_obj, *out_obj;
    int fd, code, method;
    Py_ssize_t piece_rows;
    (void)self;
    if (!PyArg_ParseTuple(args, "iOOnCi:write_halving", &fd, &src_obj, &out_obj,
                          &piece_rows, &code, &method)) {
        return NULL;
    }
    Py_ssize_t itemsize = 0;
    reducer fn = pick_checked(code, method, &itemsize);
    if (fn == NULL) return NULL;
    Py_buffer src, out;
    if (PyObject_GetBuffer(src_obj, &src, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if (PyObject_GetBuffer(out_obj, &out, PyBUF_STRIDED) < 0) {
        PyBuffer_Release(&src);
        return NULL;
    }
    PyObject *result = NULL;
    if (src.ndim != 4 || out.ndim != 4 || src.itemsize != itemsize ||
        out.itemsize != itemsize || out.strides[3] != itemsize) {
        PyErr_Format(PyExc_ValueError,
                     "chunks and out must be 4D buffers of %zd-byte items (chunks "
                     "C-contiguous, out's rows contiguous); got %d and %d "
                     "dimensions", itemsize, src.ndim, out.ndim);
        goto done;
    }
    const Py_ssize_t gy = src.shape[0], gx = src.shape[1];
    const Py_ssize_t cy = src.shape[2], cx = src.shape[3];
    const Py_ssize_t hy = cy / 2, hx = cx / 2;
    if (cy % 2 || cx % 2 || piece_rows < 2 || piece_rows % 2) {
        PyErr_Format(PyExc_ValueError,
                     "chunks of %zd x %zd items in pieces of %zd rows cannot be "
                     "halved piece by piece: chunk sides and piece_rows must be "
                     "even", cy, cx, piece_rows);
        goto done;
    }
    int fits = out.shape[2] > 0 && out.shape[3] > 0;
    for (Py_ssize_t i = 0; i < gy && fits; i++) {
        fits = i * hy / out.shape[2] < out.shape[0] && i * hy % out.shape[2] + hy <= out.shape[2];
    }
    for (Py_ssize_t j = 0; j < gx && fits; j++) {
        fits = j * hx / out.shape[3] < out.shape[1] && j * hx % out.shape[3] + hx <= out.shape[3];
    }
    if (!fits) {
        PyErr_Format(PyExc_ValueError,
                     "out (a grid of %zd x %zd chunks of %zd x %zd) cannot hold "
                     "%zd x %zd halved chunks of %zd x %zd, each inside one of "
                     "its chunks", out.shape[0], out.shape[1], out.shape[2],
                     out.shape[3], gy, gx, hy, hx);
        goto done;
    }
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    const Py_ssize_t row_bytes = cx * itemsize;
    for (Py_ssize_t i = 0; i < gy && !failed; i++) {
        const Py_ssize_t gi = i * hy / out.shape[2], oy = i * hy % out.shape[2];
        for (Py_ssize_t j = 0; j < gx && !failed; j++) {
            const Py_ssize_t gj = j * hx / out.shape[3], ox = j * hx % out.shape[3];
            const char *chunk = (const char *)src.buf + (i * gx + j) * cy * row_bytes;
            char *dst = (char *)out.buf + gi * out.strides[0] + gj * out.strides[1] +
                        oy * out.strides[2] + ox * out.strides[3];
            for (Py_ssize_t r0 = 0; r0 < cy; r0 += piece_rows) {
                const Py_ssize_t rows = r0 + piece_rows < cy ? piece_rows : cy - r0;
                failed = write_all(fd, chunk + r0 * row_bytes, rows * row_bytes);
                if (failed) break;
                fn(chunk + r0 * row_bytes, NULL, row_bytes, 0,
                   dst + (r0 / 2) * out.strides[2], out.strides[2], rows, cx, method);
            }
        }
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        errno = failed;
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&out);
    PyBuffer_Release(&src);
    return result;
}

static PyMethodDef methods[] = {
    {"reduce", reduce, METH_VARARGS, reduce_doc},
    {"write_halving", write_halving, METH_VARARGS, write_halving_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#ifdef Py_GIL_DISABLED
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ome_writers._pyramid_kernel",
    .m_doc = "One pyramid level from the level above (see the source's header).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__pyramid_kernel(void)
{
    return PyModuleDef_Init(&module);
}
