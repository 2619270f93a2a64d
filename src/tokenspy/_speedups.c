/* Optional C speed-up of the caller walk (tokenspy.context.user_frame), CPython 3.11 only.
 *
 * Naming the caller of an unprofiled LLM call means walking up the stack to the first frame
 * outside tokenspy and the SDKs. In Python that walk makes a frame object for every frame it
 * passes (sys._getframe, f_back); here it reads the interpreter's own frame records, which
 * exist anyway, and makes nothing. Measured through the real OpenAI SDK, that walk was the
 * largest single part of tokenspy's overhead per call.
 *
 * It only reads the caches the Python walk fills (tokenspy.context._library_files and
 * _code_cache): on any frame whose code is not in them yet it returns MISS, and the Python walk
 * runs instead and fills them. So both walks give the same answer by construction, and a
 * first call of a new call site costs what it always did.
 *
 * Other Python versions (whose frame records differ) build a module without user_frame, and
 * tokenspy uses the Python walk; so does every Python when the build of this file fails
 * (setup.py marks it optional) or TOKENSPY_PURE_PYTHON is set.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000 && !defined(PYPY_VERSION)
#define TOKENSPY_WALK 1
#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#endif
#include "internal/pycore_frame.h"
#endif

static PyObject *MISS; /* returned when the Python walk must run (it fills the caches) */

#ifdef TOKENSPY_WALK

/* The frame below f (f_back), skipping frames still being set up, as PyFrame_GetBack does. */
static inline _PyInterpreterFrame *
complete(_PyInterpreterFrame *f)
{
    while (f != NULL && _PyFrame_IsIncomplete(f)) {
        f = f->previous;
    }
    return f;
}

/* The stack of the last walk that found its answer: the code of each frame it passed, from
 * where it started to the user frame, and that answer. An app makes most of its calls from a
 * few call sites, so the next walk usually meets the same codes; comparing code pointers in the
 * interpreter's frame records (which the SDK has just used, so they are in the CPU cache) costs
 * far less than the set and dict lookups of a walk, whose objects the SDK's work has evicted.
 * The codes are held (strong references), so none of them can be freed and its address reused
 * by another code while the entry lives. */
#define CHAIN_MAX 24
static PyCodeObject *chain[CHAIN_MAX];
static int chain_len = -1; /* -1: no entry */
static Py_ssize_t chain_skip;
static PyObject *chain_user; /* strong reference; Py_None: no user frame above */

static void
remember(PyCodeObject **codes, int n, Py_ssize_t skip, PyObject *user)
{
    for (int i = 0; i < n; i++) {
        Py_INCREF(codes[i]);
    }
    Py_INCREF(user);
    int old_len = chain_len;
    PyObject *old_user = chain_user;
    PyCodeObject *old[CHAIN_MAX];
    for (int i = 0; i < old_len; i++) {
        old[i] = chain[i];
    }
    for (int i = 0; i < n; i++) {
        chain[i] = codes[i];
    }
    chain_len = n;
    chain_skip = skip;
    chain_user = user;
    /* released last: a code's destructor must not see a half-written entry */
    for (int i = 0; i < old_len; i++) {
        Py_DECREF(old[i]);
    }
    if (old_len >= 0) {
        Py_DECREF(old_user);
    }
}

/* user_frame(skip, library_files, code_cache) -> user tuple | None | MISS
 *
 * Starts where sys._getframe(skip) would (skip frames above the calling Python function).
 * Frames whose file is in library_files are passed; for any other, the code_cache entry
 * (keyed by id(code), holding (code, user-or-None)) decides: a user tuple is returned, None
 * passes on. A frame whose code has no entry returns MISS. None: no user frame on the stack.
 */
static PyObject *
user_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PySet_Check(args[1]) || !PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "user_frame(skip: int, library_files: set, code_cache: dict)");
        return NULL;
    }
    Py_ssize_t skip = PyLong_AsSsize_t(args[0]);
    if (skip == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *library = args[1];
    PyObject *cache = args[2];
    _PyInterpreterFrame *start = complete(PyThreadState_Get()->cframe->current_frame);
    for (Py_ssize_t i = skip; i > 0 && start != NULL; i--) {
        start = complete(start->previous);
    }
    _PyInterpreterFrame *f = start;
    if (chain_len >= 0 && chain_skip == skip) {
        int i = 0;
        for (; i < chain_len && f != NULL && f->f_code == chain[i]; i++) {
            f = complete(f->previous);
        }
        /* the same codes up to the user frame (or to the bottom of the stack, for None) */
        if (i == chain_len && (chain_user != Py_None || f == NULL)) {
            return Py_NewRef(chain_user);
        }
        f = start;
    }
    PyCodeObject *codes[CHAIN_MAX];
    int n = 0;
    for (; f != NULL; f = complete(f->previous)) {
        PyCodeObject *code = f->f_code;
        if (n < CHAIN_MAX) {
            codes[n] = code;
        }
        n++;
        int in_library = PySet_Contains(library, code->co_filename);
        if (in_library < 0) {
            return NULL;
        }
        if (in_library) {
            continue;
        }
        PyObject *key = PyLong_FromVoidPtr(code);
        if (key == NULL) {
            return NULL;
        }
        PyObject *entry = PyDict_GetItemWithError(cache, key); /* borrowed */
        Py_DECREF(key);
        if (entry == NULL) {
            if (PyErr_Occurred()) {
                return NULL;
            }
            return Py_NewRef(MISS);
        }
        /* the entry must be this code's (ids are reused once a code object dies) */
        if (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 2
                || PyTuple_GET_ITEM(entry, 0) != (PyObject *)code) {
            return Py_NewRef(MISS);
        }
        PyObject *user = PyTuple_GET_ITEM(entry, 1);
        if (user != Py_None) {
            if (n <= CHAIN_MAX) {
                remember(codes, n, skip, user);
            }
            return Py_NewRef(user);
        }
    }
    if (n <= CHAIN_MAX) {
        remember(codes, n, skip, Py_None);
    }
    Py_RETURN_NONE;
}

#endif

static PyMethodDef methods[] = {
#ifdef TOKENSPY_WALK
    {"user_frame", (PyCFunction)(void (*)(void))user_frame, METH_FASTCALL,
     "user_frame(skip, library_files, code_cache): the caller walk of tokenspy.context, or MISS."},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "tokenspy._speedups", "Optional C speed-ups of tokenspy's hot path.", -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    MISS = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type);
    if (MISS == NULL || PyModule_AddObjectRef(m, "MISS", MISS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
