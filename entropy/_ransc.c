/* The lane loops of the rANS format (entropy/FORMAT.md, sections 3 and 4) in C.

   This is the compiled twin of the numpy reference coder in entropy/rans.py: it takes
   the same prepared arrays (symbol positions into the flat cdf table, table rows, the
   slot lookup table) and fills the same arrays (final lane states, words, words per
   segment), one symbol at a time, so the lanes cost nothing: a stream with 32 lanes
   codes as fast as one with 1024.  Everything around the loops (the layout, escapes,
   header, CRCs, validation of a stream before anything is allocated) stays in Python,
   written once in entropy/format.py; tests check both coders write the same bytes.

   Built by setup.py as codec.entropy._ransc (optional: without a C compiler the numpy
   coder serves).  The GIL is released while the loops run. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define STATE_LOW 65536u
#define TOTAL 65536

static int need(Py_buffer *b, Py_ssize_t bytes, const char *what) {
    if (b->len < bytes) {
        PyErr_Format(PyExc_ValueError, "_ransc: %s holds %zd bytes, %zd needed", what, b->len, bytes);
        return 0;
    }
    return 1;
}

/* encode(pos int64[N], cdf int64[], states out uint32[S*L], words out uint16[N],
          counts out int64[S], L, T, S) -> number of words.
   pos[n] = row * stride + symbol index: cdf[pos] is the start, cdf[pos + 1] - cdf[pos]
   the frequency.  Symbols run n = segment * T*L + step * L + lane; positions past N
   are padding (no symbol). */
static PyObject *encode(PyObject *self, PyObject *args) {
    Py_buffer pos, cdf, states, words, counts;
    Py_ssize_t L, T, S;
    if (!PyArg_ParseTuple(args, "y*y*w*w*w*nnn", &pos, &cdf, &states, &words, &counts, &L, &T, &S))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t N = pos.len / 8, total = 0, ncdf = cdf.len / 8;
    uint64_t *x = NULL;
    if (L < 1 || T < 0 || S < 0 || (S > 0 && (T < 1 || S * T * L < N)) || (S == 0 && N > 0)) {
        PyErr_SetString(PyExc_ValueError, "_ransc: bad layout");
        goto out;
    }
    if (!need(&states, S * L * 4, "states") || !need(&words, N * 2, "words") || !need(&counts, S * 8, "counts"))
        goto out;
    const int64_t *P = (const int64_t *)pos.buf, *C = (const int64_t *)cdf.buf;
    for (Py_ssize_t n = 0; n < N; n++)
        if (P[n] < 0 || P[n] + 1 >= ncdf) {
            PyErr_SetString(PyExc_ValueError, "_ransc: a symbol position lies outside the table");
            goto out;
        }
    x = (uint64_t *)malloc(sizeof(uint64_t) * (size_t)(L > 0 ? L : 1));
    if (!x) {
        PyErr_NoMemory();
        goto out;
    }
    uint32_t *st = (uint32_t *)states.buf;
    uint16_t *W = (uint16_t *)words.buf;
    int64_t *K = (int64_t *)counts.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t s = 0; s < S; s++) {
        Py_ssize_t base = s * T * L, nseg = N - base < T * L ? N - base : T * L;
        uint16_t *buf = W + total;
        Py_ssize_t p = nseg;  /* words are written backwards, from the end of the segment's room */
        for (Py_ssize_t l = 0; l < L; l++) x[l] = STATE_LOW;
        for (Py_ssize_t t = T - 1; t >= 0; t--) {
            Py_ssize_t n0 = base + t * L, lanes = N - n0 < L ? N - n0 : L;
            for (Py_ssize_t l = lanes - 1; l >= 0; l--) {
                int64_t q = P[n0 + l];
                uint64_t c = (uint64_t)C[q], f = (uint64_t)(C[q + 1] - C[q]), v = x[l];
                if (v >= (f << 16)) {
                    buf[--p] = (uint16_t)(v & 0xFFFF);
                    v >>= 16;
                }
                x[l] = ((v / f) << 16) + v % f + c;
            }
        }
        Py_ssize_t k = nseg - p;
        memmove(buf, buf + p, (size_t)k * 2);
        K[s] = k;
        total += k;
        for (Py_ssize_t l = 0; l < L; l++) st[s * L + l] = (uint32_t)x[l];
    }
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(total);
out:
    free(x);
    PyBuffer_Release(&pos);
    PyBuffer_Release(&cdf);
    PyBuffer_Release(&states);
    PyBuffer_Release(&words);
    PyBuffer_Release(&counts);
    return result;
}

/* decode(rows int64[N], lut uint16[(R+1) * 2^16], cdf int64[], stride, offsets int64[R+1],
          lengths int64[R+1], states uint32[S*L], words uint16[], counts int64[S], L, T, S,
          out int32[N], esc int64[E]) -> 0 when the stream is consistent, 1 when its words
   run out before its symbols, 2 when words are left over, 3 when a final lane state is
   not 2^16 (corrupt data or wrong tables), 4 when the escapes decoded are not the E the
   header promises.  out[n] = symbol index + offsets[row]; esc gets the positions of
   the escape symbols (whose values the caller reads from the escape section). */
static PyObject *decode(PyObject *self, PyObject *args) {
    Py_buffer rows, lut, cdf, offs, lens, states, words, counts, outb, escb;
    Py_ssize_t stride, L, T, S;
    if (!PyArg_ParseTuple(args, "y*y*y*ny*y*y*y*y*nnnw*w*", &rows, &lut, &cdf, &stride, &offs, &lens, &states,
                          &words, &counts, &L, &T, &S, &outb, &escb))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t N = rows.len / 8, nlut = lut.len / 2, ncdf = cdf.len / 8, nwords = words.len / 2;
    Py_ssize_t n_esc_max = escb.len / 8, n_esc = 0;
    uint64_t *x = NULL;
    int err = 0;
    if (L < 1 || T < 0 || S < 0 || (S > 0 && (T < 1 || S * T * L < N)) || (S == 0 && N > 0) || stride < 1) {
        PyErr_SetString(PyExc_ValueError, "_ransc: bad layout");
        goto out;
    }
    Py_ssize_t rmax = nlut / TOTAL;
    if (!need(&states, S * L * 4, "states") || !need(&counts, S * 8, "counts") || !need(&outb, N * 4, "out") ||
        !need(&offs, rmax * 8, "offsets") || !need(&lens, rmax * 8, "lengths"))
        goto out;
    const int64_t *Rw = (const int64_t *)rows.buf, *C = (const int64_t *)cdf.buf, *K = (const int64_t *)counts.buf;
    const int64_t *Off = (const int64_t *)offs.buf, *Len = (const int64_t *)lens.buf;
    const uint16_t *U = (const uint16_t *)lut.buf, *W = (const uint16_t *)words.buf;
    const uint32_t *st = (const uint32_t *)states.buf;
    int32_t *O = (int32_t *)outb.buf;
    int64_t *Esc = (int64_t *)escb.buf;
    for (Py_ssize_t n = 0; n < N; n++)
        if (Rw[n] < 0 || Rw[n] >= rmax || (Rw[n] + 1) * stride >= ncdf + 1) {
            PyErr_SetString(PyExc_ValueError, "_ransc: a table row lies outside the tables");
            goto out;
        }
    Py_ssize_t ksum = 0;
    for (Py_ssize_t s = 0; s < S; s++) {
        if (K[s] < 0 || K[s] > nwords - ksum) {
            PyErr_SetString(PyExc_ValueError, "_ransc: word counts exceed the words");
            goto out;
        }
        ksum += K[s];
    }
    x = (uint64_t *)malloc(sizeof(uint64_t) * (size_t)L);
    if (!x) {
        PyErr_NoMemory();
        goto out;
    }
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t woff = 0;
    for (Py_ssize_t s = 0; s < S && !err; s++) {
        Py_ssize_t base = s * T * L, k = K[s], p = 0;
        const uint16_t *w = W + woff;
        for (Py_ssize_t l = 0; l < L; l++) x[l] = st[s * L + l];
        for (Py_ssize_t t = 0; t < T && !err; t++) {
            Py_ssize_t n0 = base + t * L, lanes = N - n0 < L ? N - n0 : L;
            for (Py_ssize_t l = 0; l < lanes; l++) {
                int64_t r = Rw[n0 + l];
                uint64_t v = x[l], slot = v & 0xFFFF;
                uint64_t sym = U[r * TOTAL + (int64_t)slot];
                int64_t q = r * stride + (int64_t)sym;
                uint64_t c = (uint64_t)C[q], f = (uint64_t)(C[q + 1] - C[q]);
                v = f * (v >> 16) + slot - c;
                if (v < STATE_LOW) {
                    if (p >= k) {
                        err = 1;
                        break;
                    }
                    v = (v << 16) | w[p++];
                }
                x[l] = v;
                if ((int64_t)sym == Len[r]) {  /* too many escapes: reported after the word checks, as numpy does */
                    if (n_esc < n_esc_max) Esc[n_esc] = n0 + l;
                    n_esc++;
                }
                O[n0 + l] = (int32_t)((int64_t)sym + Off[r]);
            }
        }
        if (!err && p != k) err = 2;
        for (Py_ssize_t l = 0; l < L && !err; l++)
            if (x[l] != STATE_LOW) err = 3;
        woff += k;
    }
    if (!err && n_esc != n_esc_max) err = 4;
    Py_END_ALLOW_THREADS
    result = PyLong_FromLong(err);
out:
    free(x);
    PyBuffer_Release(&rows);
    PyBuffer_Release(&lut);
    PyBuffer_Release(&cdf);
    PyBuffer_Release(&states);
    PyBuffer_Release(&words);
    PyBuffer_Release(&counts);
    PyBuffer_Release(&offs);
    PyBuffer_Release(&lens);
    PyBuffer_Release(&outb);
    PyBuffer_Release(&escb);
    return result;
}

/* prepare(values int64[N], rows int64[N], offsets int64[R+1], lengths int64[R+1], stride,
           cost int64[], pos out int64[N], esc out uint8[N]) -> (layout cost, escapes).
   Section 2's symbol mapping: s = value - offsets[row]; in range, pos = row * stride + s;
   else the escape (pos = row * stride + lengths[row], esc[n] = 1).  The cost is the sum
   of cost[pos] (section 4's layout rule). */
static PyObject *prepare(PyObject *self, PyObject *args) {
    Py_buffer vals, rows, offs, lens, cost, posb, escb;
    Py_ssize_t stride;
    if (!PyArg_ParseTuple(args, "y*y*y*y*ny*w*w*", &vals, &rows, &offs, &lens, &stride, &cost, &posb, &escb))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t N = vals.len / 8, R1 = offs.len / 8, ncost = cost.len / 8;
    if (!need(&rows, N * 8, "rows") || !need(&lens, R1 * 8, "lengths") || !need(&posb, N * 8, "pos") ||
        !need(&escb, N, "esc"))
        goto out;
    if (stride < 1) {
        PyErr_SetString(PyExc_ValueError, "_ransc: bad stride");
        goto out;
    }
    const int64_t *V = (const int64_t *)vals.buf, *Rw = (const int64_t *)rows.buf;
    const int64_t *Off = (const int64_t *)offs.buf, *Len = (const int64_t *)lens.buf, *Cost = (const int64_t *)cost.buf;
    int64_t *P = (int64_t *)posb.buf;
    uint8_t *E = (uint8_t *)escb.buf;
    for (Py_ssize_t n = 0; n < N; n++)
        if (Rw[n] < 0 || Rw[n] >= R1 || (Rw[n] + 1) * stride > ncost) {
            PyErr_SetString(PyExc_ValueError, "_ransc: a table row lies outside the tables");
            goto out;
        }
    int64_t total = 0;
    Py_ssize_t n_esc = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t n = 0; n < N; n++) {
        int64_t r = Rw[n], s = V[n] - Off[r], len = Len[r];
        int e = (uint64_t)s >= (uint64_t)len;  /* below the range wraps to a huge value */
        if (e) s = len;
        n_esc += e;
        E[n] = (uint8_t)e;
        int64_t q = r * stride + s;
        P[n] = q;
        total += Cost[q];
    }
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("(Ln)", (long long)total, n_esc);
out:
    PyBuffer_Release(&vals);
    PyBuffer_Release(&rows);
    PyBuffer_Release(&offs);
    PyBuffer_Release(&lens);
    PyBuffer_Release(&cost);
    PyBuffer_Release(&posb);
    PyBuffer_Release(&escb);
    return result;
}

/* decode_seq(rows int64[n], lut, cdf, stride, offsets, lengths, words uint16[], x, w,
              out int64[n], esc out int64[n]) -> (x, w, escapes, err): the next n symbols of
   a sequential stream (FORMAT.md section 8: one state, words in decode order) from
   state x and word w on.  out[i] = symbol index + offsets[row]; the positions of
   escape symbols go to esc (the caller reads their values); err 1: the words ran out. */
static PyObject *decode_seq(PyObject *self, PyObject *args) {
    Py_buffer rows, lut, cdf, offs, lens, words, outb, escb;
    Py_ssize_t stride, w;
    unsigned long long x0;
    if (!PyArg_ParseTuple(args, "y*y*y*ny*y*y*Knw*w*", &rows, &lut, &cdf, &stride, &offs, &lens, &words, &x0, &w,
                          &outb, &escb))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = rows.len / 8, nlut = lut.len / 2, ncdf = cdf.len / 8, nw = words.len / 2, rmax = nlut / TOTAL;
    if (!need(&outb, n * 8, "out") || !need(&escb, n * 8, "esc") || !need(&offs, rmax * 8, "offsets") ||
        !need(&lens, rmax * 8, "lengths"))
        goto out;
    if (stride < 1 || w < 0 || w > nw) {
        PyErr_SetString(PyExc_ValueError, "_ransc: bad stride or word position");
        goto out;
    }
    const int64_t *Rw = (const int64_t *)rows.buf, *C = (const int64_t *)cdf.buf;
    const int64_t *Off = (const int64_t *)offs.buf, *Len = (const int64_t *)lens.buf;
    const uint16_t *U = (const uint16_t *)lut.buf, *W = (const uint16_t *)words.buf;
    int64_t *O = (int64_t *)outb.buf, *Esc = (int64_t *)escb.buf;
    for (Py_ssize_t i = 0; i < n; i++)
        if (Rw[i] < 0 || Rw[i] >= rmax || (Rw[i] + 1) * stride > ncdf) {
            PyErr_SetString(PyExc_ValueError, "_ransc: a table row lies outside the tables");
            goto out;
        }
    uint64_t x = x0;
    Py_ssize_t ne = 0;
    int err = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t r = Rw[i];
        uint64_t slot = x & 0xFFFF, sym = U[r * TOTAL + (int64_t)slot];
        int64_t q = r * stride + (int64_t)sym;
        uint64_t c = (uint64_t)C[q], f = (uint64_t)(C[q + 1] - C[q]);
        x = f * (x >> 16) + slot - c;
        if (x < STATE_LOW) {
            if (w >= nw) {
                err = 1;
                break;
            }
            x = (x << 16) | W[w++];
        }
        if ((int64_t)sym == Len[r]) Esc[ne++] = i;
        O[i] = (int64_t)sym + Off[r];
    }
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("(Knni)", (unsigned long long)x, w, ne, err);
out:
    PyBuffer_Release(&rows);
    PyBuffer_Release(&lut);
    PyBuffer_Release(&cdf);
    PyBuffer_Release(&offs);
    PyBuffer_Release(&lens);
    PyBuffer_Release(&words);
    PyBuffer_Release(&outb);
    PyBuffer_Release(&escb);
    return result;
}

static PyMethodDef methods[] = {
    {"decode_seq", decode_seq, METH_VARARGS,
     "decode_seq(rows, lut, cdf, stride, offsets, lengths, words, x, w, out, esc) -> (x, w, escapes, err)"},
    {"prepare", prepare, METH_VARARGS, "prepare(values, rows, offsets, lengths, stride, cost, pos, esc) -> (cost, escapes)"},
    {"encode", encode, METH_VARARGS, "encode(pos, cdf, states, words, counts, L, T, S) -> words written"},
    {"decode", decode, METH_VARARGS,
     "decode(rows, lut, cdf, stride, offsets, lengths, states, words, counts, L, T, S, out, esc) -> 0, or 1..4 "
     "for a corrupt stream"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ransc", "rANS lane loops in C (see rans.py)", -1,
                                    methods};

/* ABI: what rans.py expects of this module; it falls back to numpy (with a warning) when a
   stale build from older sources answers another number.  Bump it with every change to
   the functions' arguments or results. */
#define RANSC_ABI 1

PyMODINIT_FUNC PyInit__ransc(void) {
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "ABI", RANSC_ABI) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
