/* Optional C speed-ups of tokenspy's hot path, CPython 3.11 only: the caller walk
 * (tokenspy.context.user_frame) and the plain OpenAI request (tokenspy.interceptor.openai_plain).
 *
 * Naming the caller of an unprofiled LLM call means walking up the stack to the first frame
 * outside tokenspy and the SDKs. In Python that walk makes a frame object for every frame it
 * passes (sys._getframe, f_back); here it reads the interpreter's own frame records, which
 * exist anyway, and makes nothing.
 *
 * It only reads the caches the Python walk fills (tokenspy.context._library_files and
 * _code_cache): on any frame whose code is not in them yet it returns MISS, and the Python walk
 * runs instead and fills them. So both walks give the same answer by construction, and a
 * first call of a new call site costs what it always did.
 *
 * Other Python versions (whose frame records differ) build a module without either, and
 * tokenspy runs in Python; so does every Python when the build of this file fails (setup.py
 * marks it optional) or TOKENSPY_PURE_PYTHON is set.
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

/* The code of a plain call runs once between two SDK calls, whose work has evicted it from the
 * CPU's instruction cache: the rare branches go out of line, so the common one spans fewer
 * cache lines. */
#if defined(__GNUC__) || defined(__clang__)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define COLD __attribute__((noinline, cold))
#else
#define UNLIKELY(x) (x)
#define COLD
#endif

/* An object the garbage collector never tracks: None, an exact str, int or float. */
static inline int
atomic(PyObject *x)
{
    return x == Py_None || PyUnicode_CheckExact(x) || PyLong_CheckExact(x) || PyFloat_CheckExact(x);
}

/* Untrack a tuple of atomic objects, as the collector itself does at its next pass
 * (_PyTuple_MaybeUntrack); 1 if it did. The deferred entries and the rows the recorder keeps hold
 * strings and numbers only; untracked from the start, they are never in the young generation the
 * collector walks. Without tokenspy the SDK's calls free about what they allocate and the
 * collector seldom runs at all; with it, each kept row counts as an allocation, so collections do
 * run, and these objects are then not what they walk. Inline type checks only: this runs once a
 * call, and a call into code the SDK does not use costs more than the checks. */
static inline int
untrack_atomic(PyObject *t)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(t); i++) {
        if (!atomic(PyTuple_GET_ITEM(t, i))) {
            return 0;
        }
    }
    PyObject_GC_UnTrack(t);
    return 1;
}

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
walk(Py_ssize_t skip, PyObject *library, PyObject *cache)
{
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

static PyObject *
user_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3 || !PySet_Check(args[1]) || !PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "user_frame(skip: int, library_files: set, code_cache: dict)");
        return NULL;
    }
    Py_ssize_t skip = PyLong_AsSsize_t(args[0]);
    if (skip == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return walk(skip, args[1], args[2]);
}


/* ------------------------------------------------------------------ the plain OpenAI call
 *
 * PlainRequest: the patched SyncAPIClient.request of tokenspy.interceptor.openai_plain, in C.
 * It does what that module's Python wrapper does for the common call (see there), and hands
 * everything else to Python: `general` (the general wrapper) before the call, `after` (the rest
 * of the recording) after it. Its hot case keeps no Python frame of its own and passes the SDK's
 * arguments through as they came (vectorcall), so it touches fewer objects per call.
 */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *dict;
    PyObject *orig, *general, *after, *user_frame;
    PyObject *scope_var, *default_scope, *outer_var, *kind_cache, *library, *code_cache;
    PyObject *pending_append, *pending, *recorder_dict, *provider;
} PlainRequest;

static PyObject *s_method, *s_url, *s_json_data, *s_model, *s_stream, *s_post, *s_usage, *s_prompt_tokens,
    *s_completion_tokens, *s_prompt_tokens_details, *s_completion_tokens_details, *s_cached_tokens,
    *s_cache_write_tokens, *s_reasoning_tokens, *s_defer_model, *s_defer_provider, *s_settle_at, *s_settle, *s_internal_error, *zero, *one;

/* obj.__dict__ without pydantic's __getattr__ hook (a new reference, or NULL with no error set) */
static PyObject *
fields_of(PyObject *obj)
{
    PyObject *d = PyObject_GenericGetDict(obj, NULL);
    if (d == NULL || !PyDict_CheckExact(d)) {
        PyErr_Clear();
        Py_XDECREF(d);
        return NULL;
    }
    return d;
}

/* d[key] as a borrowed reference, NULL (no error set) when absent */
static inline PyObject *
item(PyObject *d, PyObject *key)
{
    PyObject *v = PyDict_GetItemWithError(d, key);
    if (v == NULL) {
        PyErr_Clear();
    }
    return v;
}

/* 1: a plain call (*body, *model set, borrowed); 0: not one; errors are "not one" */
static int
is_plain(PlainRequest *self, PyObject *options, PyObject **body, PyObject **model)
{
    PyObject *scope = NULL, *outer = NULL;
    int plain = 0;
    PyObject *d = fields_of(options);
    if (d == NULL) {
        return 0;
    }
    PyObject *method = item(d, s_method), *url = item(d, s_url);
    *body = item(d, s_json_data);
    if (method == NULL || url == NULL || *body == NULL || !PyDict_CheckExact(*body)) {
        goto done;
    }
    if (PyContextVar_Get(self->scope_var, NULL, &scope) < 0 || scope != self->default_scope) {
        goto done;
    }
    int is_post = PyObject_RichCompareBool(method, s_post, Py_EQ);
    if (is_post != 1) {
        goto done;
    }
    PyObject *kind = item(self->kind_cache, url);
    if (kind == NULL || kind == Py_None) {
        goto done;
    }
    PyObject *stream = item(*body, s_stream);
    if (stream != NULL) {
        int streamed = PyObject_IsTrue(stream);
        if (streamed != 0) {
            goto done;
        }
    }
    if (PyContextVar_Get(self->outer_var, NULL, &outer) < 0 || outer == NULL || !PyTuple_CheckExact(outer)
            || PyTuple_GET_SIZE(outer) != 0) {
        goto done;
    }
    PyObject *m = item(*body, s_model);
    *model = (m != NULL && PyUnicode_Check(m)) ? m : Py_None;
    plain = 1;
done:
    Py_XDECREF(scope);
    Py_XDECREF(outer);
    /* body and model stay alive: the options object holds them for the whole call */
    Py_DECREF(d);
    if (!plain) {
        PyErr_Clear();
    }
    return plain;
}

/* `x or 0` */
static inline PyObject *
or_zero(PyObject *x)
{
    int t = PyObject_IsTrue(x);
    if (t < 0) {
        return NULL;
    }
    return Py_NewRef(t ? x : zero);
}

/* OpenAIAdapter.usage of a chat completion, from the models' fields: (model, usage tuple) as
 * new references, or 0 with nothing set when it is not one (the Python side reads it then) */
static int
chat_usage(PyObject *result, PyObject **model, PyObject **usage)
{
    int ok = 0;
    PyObject *fields = fields_of(result), *u = NULL, *details = NULL, *out = NULL;
    PyObject *v[6] = {NULL, NULL, NULL, NULL, NULL, NULL};
    if (fields == NULL) {
        return 0;
    }
    PyObject *m = item(fields, s_model), *usage_obj = item(fields, s_usage);
    if (m == NULL || usage_obj == NULL || (u = fields_of(usage_obj)) == NULL) {
        goto done;
    }
    PyObject *prompt = item(u, s_prompt_tokens), *completion = item(u, s_completion_tokens);
    PyObject *pd = item(u, s_prompt_tokens_details), *cd = item(u, s_completion_tokens_details);
    if (prompt == NULL || !PyLong_CheckExact(prompt) || completion == NULL || pd == NULL || cd == NULL) {
        goto done;
    }
    v[0] = Py_NewRef(prompt);
    if ((v[1] = or_zero(completion)) == NULL) {
        goto done;
    }
    if (pd == Py_None) {
        v[2] = Py_NewRef(zero);
        v[3] = Py_NewRef(zero);
    }
    else {
        PyObject *cached, *write;
        if ((details = fields_of(pd)) == NULL || (cached = item(details, s_cached_tokens)) == NULL
                || (write = item(details, s_cache_write_tokens)) == NULL
                || (v[2] = or_zero(cached)) == NULL || (v[3] = or_zero(write)) == NULL) {
            goto done;
        }
    }
    if (cd == Py_None) {
        v[4] = Py_NewRef(zero);
    }
    else {
        PyObject *reasoning;
        if ((out = fields_of(cd)) == NULL || (reasoning = item(out, s_reasoning_tokens)) == NULL
                || (v[4] = or_zero(reasoning)) == NULL) {
            goto done;
        }
    }
    v[5] = Py_NewRef(zero);
    *usage = PyTuple_Pack(6, v[0], v[1], v[2], v[3], v[4], v[5]);
    if (*usage != NULL) {
        *model = Py_NewRef(m);
        ok = 1;
    }
done:
    for (int i = 0; i < 6; i++) {
        Py_XDECREF(v[i]);
    }
    Py_XDECREF(out);
    Py_XDECREF(details);
    Py_XDECREF(u);
    Py_DECREF(fields);
    if (!ok) {
        PyErr_Clear();
    }
    return ok;
}

/* recorder.settle, as Python calls it (looked up now): 1, or -1 on an error */
COLD static int
settle_batch(PlainRequest *self)
{
    PyObject *settle = item(self->recorder_dict, s_settle);
    PyObject *r = settle != NULL ? PyObject_CallNoArgs(settle) : NULL;
    if (r == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError, "tokenspy.recorder.settle is gone");
        }
        return -1;
    }
    Py_DECREF(r);
    return 1;
}

/* recorder.finish's deferral of the call: 1 done, 0 not deferrable, -1 error */
static int
defer(PlainRequest *self, PyObject *resp_model, PyObject *usage, PyObject *user, double t0, double t1,
      PyObject *model)
{
    PyObject *dm = item(self->recorder_dict, s_defer_model), *dp = item(self->recorder_dict, s_defer_provider);
    if (dm == NULL || dp != self->provider) {
        return 0;
    }
    int same = PyObject_RichCompareBool(resp_model, dm, Py_EQ);
    if (same <= 0) {
        return same;
    }
    /* the entry's tuples first (the caller's, made by the Python walk, is kept: once is enough) */
    int flat = untrack_atomic(usage) && (user == Py_None || untrack_atomic(user)) && atomic(resp_model)
               && atomic(self->provider) && atomic(model);
    PyObject *ft0 = PyFloat_FromDouble(t0), *ft1 = PyFloat_FromDouble(t1);
    PyObject *entry = NULL;
    if (ft0 != NULL && ft1 != NULL) {
        entry = PyTuple_Pack(8, usage, Py_None, user, ft0, ft1, resp_model, self->provider, model);
        if (entry != NULL && flat) {
            PyObject_GC_UnTrack(entry);
        }
    }
    Py_XDECREF(ft0);
    Py_XDECREF(ft1);
    if (entry == NULL) {
        return -1;
    }
    PyObject *r = PyObject_CallOneArg(self->pending_append, entry);
    Py_DECREF(entry);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    PyObject *at = item(self->recorder_dict, s_settle_at);
    Py_ssize_t n = PyObject_Size(self->pending);
    Py_ssize_t limit = at != NULL ? PyLong_AsSsize_t(at) : 256;
    if (n < 0 || (limit == -1 && PyErr_Occurred())) {
        return -1;
    }
    if (UNLIKELY(n >= limit)) {
        return settle_batch(self);
    }
    return 1;
}

/* tokenspy's own failure (the error set now): warned once by recorder.internal_error, never
 * raised to the user; -1 only if the warning raised (warnings made errors), as in Python */
COLD static int
internal(PlainRequest *self)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *warn = item(self->recorder_dict, s_internal_error);  /* recorder.internal_error */
    PyObject *r = value != NULL && warn != NULL ? PyObject_CallOneArg(warn, value) : Py_NewRef(Py_None);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* the rare ways of plain_call, out of line (see COLD) */
COLD static PyObject *
call_general(PlainRequest *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    return PyObject_Vectorcall(self->general, args, nargsf, kwnames);
}

COLD static PyObject *
walk_in_python(PlainRequest *self)
{
    return PyObject_CallOneArg(self->user_frame, one);  /* user_frame(1): its own frame, then post() */
}

/* as the general way does when its start fails: warned, not recorded */
COLD static PyObject *
call_unrecorded(PlainRequest *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (internal(self) < 0) {
        return NULL;
    }
    return PyObject_Vectorcall(self->orig, args, nargsf, kwnames);
}

/* the rest of the recording in Python (`after`): 1, or -1 with the error to raise (a budget's) */
COLD static int
call_after(PlainRequest *self, PyObject *result, PyObject *cast_to, PyObject *model, PyObject *user, double t0,
           double t1)
{
    PyObject *ft0 = PyFloat_FromDouble(t0), *ft1 = PyFloat_FromDouble(t1);
    PyObject *r = NULL;
    if (ft0 != NULL && ft1 != NULL) {
        PyObject *a[6] = {result, cast_to, model, user, ft0, ft1};
        r = PyObject_Vectorcall(self->after, a, 6, NULL);  /* raises a budget error, if any */
    }
    Py_XDECREF(ft0);
    Py_XDECREF(ft1);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 1;
}

static PyObject *
plain_call(PlainRequest *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *body = NULL, *model = NULL;
    if (UNLIKELY(nargs < 3 || !is_plain(self, args[2], &body, &model))) {
        return call_general(self, args, nargsf, kwnames);
    }
    Py_INCREF(model);
    /* the caller: no frame of ours here, so the walk starts at the SDK's post() */
    PyObject *user = walk(0, self->library, self->code_cache);
    if (UNLIKELY(user == MISS)) {
        Py_DECREF(user);
        user = walk_in_python(self);
    }
    if (UNLIKELY(user == NULL)) {
        Py_DECREF(model);
        return call_unrecorded(self, args, nargsf, kwnames);
    }
    double t0 = _PyTime_AsSecondsDouble(_PyTime_GetPerfCounter());
    PyObject *result = PyObject_Vectorcall(self->orig, args, nargsf, kwnames);
    double t1 = _PyTime_AsSecondsDouble(_PyTime_GetPerfCounter());
    if (UNLIKELY(result == NULL)) {
        Py_DECREF(model);
        Py_DECREF(user);
        return NULL;
    }
    PyObject *resp_model = NULL, *usage = NULL;
    int done = 0;
    if ((PyObject *)Py_TYPE(result) == args[1] && chat_usage(result, &resp_model, &usage)) {
        done = defer(self, resp_model, usage, user, t0, t1, model);
        Py_DECREF(resp_model);
        Py_DECREF(usage);
        if (UNLIKELY(done < 0)) {  /* the call is noted (or the batch failed): warn, as `after` would */
            done = internal(self) < 0 ? -1 : 1;
        }
    }
    if (UNLIKELY(done == 0)) {
        done = call_after(self, result, args[1], model, user, t0, t1);
    }
    Py_DECREF(model);
    Py_DECREF(user);
    if (UNLIKELY(done < 0)) {
        Py_DECREF(result);
        return NULL;
    }
    return result;
}


static PyObject *
plain_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"orig", "general", "after", "user_frame", "scope_var", "default_scope",
                            "outer_var", "kind_cache", "library", "code_cache", "pending", "recorder_dict",
                            "provider", NULL};
    PyObject *o[13];
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOO!OO!O!O!O!OO!O:PlainRequest", names, &o[0], &o[1],
                                     &o[2], &o[3], &PyContextVar_Type, &o[4], &o[5],
                                     &PyContextVar_Type, &o[6], &PyDict_Type, &o[7], &PySet_Type, &o[8],
                                     &PyDict_Type, &o[9], &o[10], &PyDict_Type, &o[11], &o[12])) {
        return NULL;
    }
    PyObject *append = PyObject_GetAttrString(o[10], "append");
    if (append == NULL) {
        return NULL;
    }
    PlainRequest *self = (PlainRequest *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(append);
        return NULL;
    }
    self->vectorcall = (vectorcallfunc)plain_call;
    self->orig = Py_NewRef(o[0]);
    self->general = Py_NewRef(o[1]);
    self->after = Py_NewRef(o[2]);
    self->user_frame = Py_NewRef(o[3]);
    self->scope_var = Py_NewRef(o[4]);
    self->default_scope = Py_NewRef(o[5]);
    self->outer_var = Py_NewRef(o[6]);
    self->kind_cache = Py_NewRef(o[7]);
    self->library = Py_NewRef(o[8]);
    self->code_cache = Py_NewRef(o[9]);
    self->pending = Py_NewRef(o[10]);
    self->pending_append = append;
    self->recorder_dict = Py_NewRef(o[11]);
    self->provider = Py_NewRef(o[12]);
    return (PyObject *)self;
}

static int
plain_traverse(PlainRequest *self, visitproc visit, void *arg)
{
    Py_VISIT(self->dict);
    Py_VISIT(self->orig);
    Py_VISIT(self->general);
    Py_VISIT(self->after);
    Py_VISIT(self->user_frame);
    Py_VISIT(self->scope_var);
    Py_VISIT(self->default_scope);
    Py_VISIT(self->outer_var);
    Py_VISIT(self->kind_cache);
    Py_VISIT(self->library);
    Py_VISIT(self->code_cache);
    Py_VISIT(self->pending);
    Py_VISIT(self->pending_append);
    Py_VISIT(self->recorder_dict);
    Py_VISIT(self->provider);
    return 0;
}

static int
plain_clear(PlainRequest *self)
{
    Py_CLEAR(self->dict);
    Py_CLEAR(self->orig);
    Py_CLEAR(self->general);
    Py_CLEAR(self->after);
    Py_CLEAR(self->user_frame);
    Py_CLEAR(self->scope_var);
    Py_CLEAR(self->default_scope);
    Py_CLEAR(self->outer_var);
    Py_CLEAR(self->kind_cache);
    Py_CLEAR(self->library);
    Py_CLEAR(self->code_cache);
    Py_CLEAR(self->pending);
    Py_CLEAR(self->pending_append);
    Py_CLEAR(self->recorder_dict);
    Py_CLEAR(self->provider);
    return 0;
}

static void
plain_dealloc(PlainRequest *self)
{
    PyObject_GC_UnTrack(self);
    plain_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* a method: client.request is bound to the client, as the SDK's function is */
static PyObject *
plain_get(PyObject *self, PyObject *obj, PyObject *type)
{
    (void)type;
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(self);
    }
    return PyMethod_New(self, obj);
}

static PyGetSetDef plain_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PlainRequestType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tokenspy._speedups.PlainRequest",
    .tp_doc = "The patched SyncAPIClient.request of tokenspy.interceptor.openai_plain.",
    .tp_basicsize = sizeof(PlainRequest),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL
                | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_new = plain_new,
    .tp_dealloc = (destructor)plain_dealloc,
    .tp_traverse = (traverseproc)plain_traverse,
    .tp_clear = (inquiry)plain_clear,
    .tp_vectorcall_offset = offsetof(PlainRequest, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = plain_get,
    .tp_dictoffset = offsetof(PlainRequest, dict),
    .tp_getset = plain_getset,
};

static int
intern_names(void)
{
#define NAME(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return -1
    NAME(s_method, "method");
    NAME(s_url, "url");
    NAME(s_json_data, "json_data");
    NAME(s_model, "model");
    NAME(s_stream, "stream");
    NAME(s_post, "post");
    NAME(s_usage, "usage");
    NAME(s_prompt_tokens, "prompt_tokens");
    NAME(s_completion_tokens, "completion_tokens");
    NAME(s_prompt_tokens_details, "prompt_tokens_details");
    NAME(s_completion_tokens_details, "completion_tokens_details");
    NAME(s_cached_tokens, "cached_tokens");
    NAME(s_cache_write_tokens, "cache_write_tokens");
    NAME(s_reasoning_tokens, "reasoning_tokens");
    NAME(s_defer_model, "_defer_model");
    NAME(s_defer_provider, "_defer_provider");
    NAME(s_settle_at, "SETTLE_AT");
    NAME(s_settle, "settle");
    NAME(s_internal_error, "internal_error");
#undef NAME
    if ((zero = PyLong_FromLong(0)) == NULL || (one = PyLong_FromLong(1)) == NULL) {
        return -1;
    }
    return 0;
}

#endif

/* ------------------------------------------------------------------ the batch booking
 *
 * book_plain(pending, popleft, records, queue_append, model, provider, run_id, vec, offset,
 *            unknown_user) -> how many calls it booked
 *
 * The loop of tokenspy.recorder._settle for its common entry, in C: a call deferred in the
 * default scope (scope None), reported as the model and provider priced last, with an untiered
 * price (vec: its seven floats) and token counts that need no correction. It books entries from
 * the left of `pending` while they are such calls and stops at the first that is not (without
 * taking it): the Python loop books that one as before and calls this again. Each row is the
 * tuple the Python loop makes, the same objects where it uses them and the same floats (the
 * same operations in the same order; setup.py builds this file without contracting a*b+c).
 * An error after an entry was taken loses that entry, as in Python; the caller warns.
 */

/* an exact int in the range where int -> double is exact, as a C value; 0 if not one */
static inline int
small_int(PyObject *o, long long *out)
{
    if (!PyLong_CheckExact(o)) {
        return 0;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    if (v > (1LL << 53) || v < -(1LL << 53)) {
        return 0;
    }
    *out = v;
    return 1;
}

static PyObject *
book_plain(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "book_plain() takes 10 arguments");
        return NULL;
    }
    PyObject *pending = args[0], *popleft = args[1], *records = args[2], *queue_append = args[3];
    PyObject *model = args[4], *provider = args[5], *run_id = args[6], *vec = args[7];
    PyObject *unknown_user = args[9];
    double off = PyFloat_AsDouble(args[8]);
    if (off == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    if (!PyList_CheckExact(records) || !PyTuple_CheckExact(vec) || PyTuple_GET_SIZE(vec) < 7
            || !PyTuple_CheckExact(unknown_user) || PyTuple_GET_SIZE(unknown_user) != 4) {
        PyErr_SetString(PyExc_TypeError, "book_plain(): records must be a list, vec a tuple of 7 floats and "
                                         "unknown_user a (name, file, line, stack) tuple");
        return NULL;
    }
    double v[7];
    for (int k = 0; k < 7; k++) {
        PyObject *x = PyTuple_GET_ITEM(vec, k);
        if (!PyFloat_CheckExact(x)) {
            return PyLong_FromLong(0); /* the Python loop prices it */
        }
        v[k] = PyFloat_AS_DOUBLE(x);
    }
    PyObject *zero_ = PyLong_FromLong(0), *one_ = PyLong_FromLong(1);
    if (zero_ == NULL || one_ == NULL) {
        Py_XDECREF(zero_);
        Py_XDECREF(one_);
        return NULL;
    }
    long booked = 0;
    int failed = 0;
    for (;;) {
        Py_ssize_t n = PyObject_Length(pending);
        if (n < 0) {
            failed = 1;
            break;
        }
        if (n == 0) {
            break;
        }
        PyObject *entry = PySequence_GetItem(pending, 0);
        if (entry == NULL) {
            failed = 1;
            break;
        }
        /* usage, scope, user, t0, t1, model, provider, requested */
        PyObject *usage, *user, *t0o, *t1o, *rmodel, *rprovider;
        long long u[6];
        int ok = PyTuple_CheckExact(entry) && PyTuple_GET_SIZE(entry) == 8
                 && PyTuple_GET_ITEM(entry, 1) == Py_None;
        if (ok) {
            usage = PyTuple_GET_ITEM(entry, 0);
            user = PyTuple_GET_ITEM(entry, 2);
            t0o = PyTuple_GET_ITEM(entry, 3);
            t1o = PyTuple_GET_ITEM(entry, 4);
            rmodel = PyTuple_GET_ITEM(entry, 5);
            rprovider = PyTuple_GET_ITEM(entry, 6);
            ok = PyTuple_CheckExact(usage) && PyTuple_GET_SIZE(usage) == 6
                 && PyFloat_CheckExact(t0o) && PyFloat_CheckExact(t1o)
                 && (user == Py_None || (PyTuple_CheckExact(user) && PyTuple_GET_SIZE(user) == 4));
            for (int k = 0; ok && k < 6; k++) {
                ok = small_int(PyTuple_GET_ITEM(usage, k), &u[k]);
            }
        }
        if (ok) {
            /* the Python loop's `rmodel != model or rprovider != provider` */
            int same = rmodel == model ? 1 : PyObject_RichCompareBool(rmodel, model, Py_EQ);
            if (same == 1) {
                same = rprovider == provider ? 1 : PyObject_RichCompareBool(rprovider, provider, Py_EQ);
            }
            if (same < 0) {
                PyErr_Clear(); /* the Python loop meets the same error and warns */
            }
            /* tin, tout, tcached, twrite, treason, twrite1h: what _book would correct or price
             * another way goes to it */
            ok = same == 1 && u[5] == 0 && u[2] + u[3] <= u[0] && u[4] <= u[1] && u[2] >= 0 && u[3] >= 0
                 && u[4] >= 0;
        }
        if (!ok) {
            Py_DECREF(entry);
            break;
        }
        PyObject *taken = PyObject_CallNoArgs(popleft);
        if (taken == NULL) {
            Py_DECREF(entry);
            failed = 1;
            break;
        }
        Py_DECREF(taken); /* entry itself: only the holder of the settle lock takes from pending */
        double t0 = PyFloat_AS_DOUBLE(t0o), t1 = PyFloat_AS_DOUBLE(t1o);
        double cost = ((double)(u[0] - u[2] - u[3]) * v[0] + (double)u[2] * v[1] + (double)u[3] * v[2]
                       + (double)(u[1] - u[4]) * v[4] + (double)u[4] * v[5]) / 1e6 + v[6];
        PyObject *fcost = PyFloat_FromDouble(cost);
        PyObject *fdur = PyFloat_FromDouble((t1 - t0) * 1000.0);
        PyObject *fts = PyFloat_FromDouble(t0 + off);
        PyObject *row = NULL;
        if (fcost != NULL && fdur != NULL && fts != NULL) {
            PyObject *who = user == Py_None ? unknown_user : user;
            row = PyTuple_Pack(20, PyTuple_GET_ITEM(who, 0), model, provider, PyTuple_GET_ITEM(usage, 0),
                               PyTuple_GET_ITEM(usage, 1), fcost, fdur, fts, zero_, zero_,
                               PyTuple_GET_ITEM(who, 3), PyTuple_GET_ITEM(usage, 2), PyTuple_GET_ITEM(usage, 3),
                               PyTuple_GET_ITEM(usage, 4), one_, zero_, PyTuple_GET_ITEM(who, 1),
                               PyTuple_GET_ITEM(who, 2), run_id, zero_);
        }
        Py_XDECREF(fcost);
        Py_XDECREF(fdur);
        Py_XDECREF(fts);
        Py_DECREF(entry);
        if (row == NULL) {
            failed = 1;
            break;
        }
        untrack_atomic(row);
        int rc = PyList_Append(records, row);
        if (rc == 0 && queue_append != Py_None) {
            PyObject *r = PyObject_CallOneArg(queue_append, row);
            rc = r == NULL ? -1 : 0;
            Py_XDECREF(r);
        }
        Py_DECREF(row);
        if (rc < 0) {
            failed = 1;
            break;
        }
        booked++;
    }
    Py_DECREF(zero_);
    Py_DECREF(one_);
    if (failed) {
        return NULL;
    }
    return PyLong_FromLong(booked);
}

static PyMethodDef methods[] = {
#ifdef TOKENSPY_WALK
    {"user_frame", (PyCFunction)(void (*)(void))user_frame, METH_FASTCALL,
     "user_frame(skip, library_files, code_cache): the caller walk of tokenspy.context, or MISS."},
#endif
    {"book_plain", (PyCFunction)(void (*)(void))book_plain, METH_FASTCALL,
     "book_plain(pending, popleft, records, queue_append, model, provider, run_id, vec, offset, "
     "unknown_user): the common case of tokenspy.recorder._settle's loop; returns how many it booked."},
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
#ifdef TOKENSPY_WALK
    if (intern_names() < 0 || PyModule_AddType(m, &PlainRequestType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
#endif
    return m;
}
