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

/* an exact int that fits a long long, as a C value; 0 if not one (no error set) */
static inline int
exact_ll(PyObject *o, long long *out)
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
    *out = v;
    return 1;
}

/* an exact int in the range where int -> double is exact, as a C value; 0 if not one */
static inline int
small_int(PyObject *o, long long *out)
{
    return exact_ll(o, out) && *out <= (1LL << 53) && *out >= -(1LL << 53);
}

/* Token counts (tin, tout, tcached, twrite, treason, twrite1h) the fast booking takes as they
 * are: what recorder._book would correct, or price another way, is left to it. */
static inline int
plain_counts(const long long *u)
{
    return u[5] == 0 && u[2] + u[3] <= u[0] && u[4] <= u[1] && u[2] >= 0 && u[3] >= 0 && u[4] >= 0;
}

/* The cost recorder._settle's loop computes: ModelPrice.cost's terms in its order */
static inline double
plain_cost(const long long *u, const double *v)
{
    return ((double)(u[0] - u[2] - u[3]) * v[0] + (double)u[2] * v[1] + (double)u[3] * v[2]
            + (double)(u[1] - u[4]) * v[4] + (double)u[4] * v[5]) / 1e6 + v[6];
}

/* The row recorder._settle's loop makes for a call of the model priced last (see book_plain):
 * uo the usage's six ints and u their values, who the (name, file, line, stack) of the caller,
 * v the price's seven floats. A new, untracked reference, or NULL with an error set. */
static PyObject *
plain_row(PyObject *const *uo, const long long *u, PyObject *who, PyObject *model, PyObject *provider,
          PyObject *run_id, const double *v, double t0, double t1, double off, PyObject *zero_, PyObject *one_)
{
    PyObject *fcost = PyFloat_FromDouble(plain_cost(u, v));
    PyObject *fdur = PyFloat_FromDouble((t1 - t0) * 1000.0);
    PyObject *fts = PyFloat_FromDouble(t0 + off);
    PyObject *row = NULL;
    if (fcost != NULL && fdur != NULL && fts != NULL) {
        row = PyTuple_Pack(20, PyTuple_GET_ITEM(who, 0), model, provider, uo[0], uo[1], fcost, fdur, fts, zero_,
                           zero_, PyTuple_GET_ITEM(who, 3), uo[2], uo[3], uo[4], one_, zero_, PyTuple_GET_ITEM(who, 1),
                           PyTuple_GET_ITEM(who, 2), run_id, zero_);
    }
    Py_XDECREF(fcost);
    Py_XDECREF(fdur);
    Py_XDECREF(fts);
    if (row != NULL) {
        untrack_atomic(row);
    }
    return row;
}


/* ------------------------------------------------------------------ the rows a Tracker keeps
 *
 * Rows: the list of a Tracker's rows (tokenspy.record), where most rows take 128 bytes of one
 * array instead of a tuple and the objects it holds. A Tracker keeps every row of the process;
 * as Python objects, each call left a tuple, three floats and the response's ints alive, taken
 * from the allocator's pools just as the SDK frees into them: the blocks the SDK's next call
 * would reuse, warm in the caches, were kept, and it got colder ones (measured through the SDK:
 * +0.3 % a call, against ~0 when the rows were dropped). A row of the form every plain call has
 * (strings shared with other rows, numbers, no session, test, project or git tag, priced) is kept
 * as its values; any other row, or anything else appended, is kept as it came. Reading a row
 * gives an equal tuple back (new ints and floats of the same values). Append and length only,
 * plus reading by index: what Tracker and tokenspy.record use.
 */

typedef struct {
    PyObject *row; /* the item as it came, when not kept as values; NULL otherwise */
    PyObject *name, *model, *provider, *stack, *source, *line, *run_id;
    long long tin, tout, tcached, twrite, treason;
    double cost, dur, ts;
} RowSlot;

typedef struct {
    PyObject_HEAD
    RowSlot *slots;
    Py_ssize_t head, len, cap; /* the rows are slots[head:len]; taking moves head */
    Py_ssize_t as_came; /* slots holding an item as it came: the ones traverse visits */
} Rows;

static PyTypeObject RowsType;

static inline int
exact_zero(PyObject *o)
{
    long long v;
    return exact_ll(o, &v) && v == 0;
}

static RowSlot *
rows_grow(Rows *self)
{
    if (self->len == self->cap && self->head > 0 && self->head >= self->cap / 2) {
        /* a queue whose front was taken: move the rest down rather than grow */
        memmove(self->slots, self->slots + self->head, (size_t)(self->len - self->head) * sizeof(RowSlot));
        self->len -= self->head;
        self->head = 0;
    }
    if (self->len == self->cap) {
        Py_ssize_t cap = self->cap < 64 ? 64 : self->cap * 2;
        if ((size_t)cap > PY_SSIZE_T_MAX / sizeof(RowSlot)) {
            PyErr_NoMemory();
            return NULL;
        }
        RowSlot *slots = PyMem_Realloc(self->slots, (size_t)cap * sizeof(RowSlot));
        if (slots == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        self->slots = slots;
        self->cap = cap;
    }
    return &self->slots[self->len];
}

/* a row of the plain form, as its values (the caller checked the form) */
static int
rows_add(Rows *self, PyObject *name, PyObject *model, PyObject *provider, PyObject *stack, PyObject *source,
         PyObject *line, PyObject *run_id, const long long *tokens, double cost, double dur, double ts)
{
    RowSlot *slot = rows_grow(self);
    if (slot == NULL) {
        return -1;
    }
    slot->row = NULL;
    slot->name = Py_NewRef(name);
    slot->model = Py_NewRef(model);
    slot->provider = Py_NewRef(provider);
    slot->stack = Py_NewRef(stack);
    slot->source = Py_NewRef(source);
    slot->line = Py_NewRef(line);
    slot->run_id = Py_NewRef(run_id);
    slot->tin = tokens[0];
    slot->tout = tokens[1];
    slot->tcached = tokens[2];
    slot->twrite = tokens[3];
    slot->treason = tokens[4];
    slot->cost = cost;
    slot->dur = dur;
    slot->ts = ts;
    self->len++;
    return 0;
}

/* the shared fields of a row that Rows keeps as values: exact strings, the file a string or
 * None, the line an int or None */
static inline int
shared_form(PyObject *name, PyObject *model, PyObject *provider, PyObject *stack, PyObject *source, PyObject *line,
            PyObject *run_id)
{
    return PyUnicode_CheckExact(name) && PyUnicode_CheckExact(model) && PyUnicode_CheckExact(provider)
           && PyUnicode_CheckExact(stack) && PyUnicode_CheckExact(run_id)
           && (source == Py_None || PyUnicode_CheckExact(source)) && (line == Py_None || PyLong_CheckExact(line));
}

static int
rows_append(Rows *self, PyObject *item)
{
    /* name, model, provider, tin, tout, cost, duration, ts, session, git, stack, cached, write,
     * reasoning, priced, test, source, line, run_id, project */
    if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 20) {
        PyObject *const *r = ((PyTupleObject *)item)->ob_item;
        long long t[5], priced;
        if (shared_form(r[0], r[1], r[2], r[10], r[16], r[17], r[18]) && PyFloat_CheckExact(r[5]) && PyFloat_CheckExact(r[6]) && PyFloat_CheckExact(r[7])
                && exact_ll(r[3], &t[0]) && exact_ll(r[4], &t[1]) && exact_ll(r[11], &t[2]) && exact_ll(r[12], &t[3])
                && exact_ll(r[13], &t[4]) && exact_ll(r[14], &priced) && priced == 1 && exact_zero(r[8])
                && exact_zero(r[9]) && exact_zero(r[15]) && exact_zero(r[19])) {
            return rows_add(self, r[0], r[1], r[2], r[10], r[16], r[17], r[18], t, PyFloat_AS_DOUBLE(r[5]),
                            PyFloat_AS_DOUBLE(r[6]), PyFloat_AS_DOUBLE(r[7]));
        }
    }
    RowSlot *slot = rows_grow(self);
    if (slot == NULL) {
        return -1;
    }
    slot->row = Py_NewRef(item);
    self->as_came++;
    self->len++;
    return 0;
}

static PyObject *
rows_append_method(Rows *self, PyObject *item)
{
    if (rows_append(self, item) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static Py_ssize_t
rows_length(Rows *self)
{
    return self->len - self->head;
}

/* field k of a slot kept as values, a new reference (the row's form: see rows_append) */
static PyObject *
slot_field(const RowSlot *s, int k)
{
    switch (k) {
    case 0: return Py_NewRef(s->name);
    case 1: return Py_NewRef(s->model);
    case 2: return Py_NewRef(s->provider);
    case 3: return PyLong_FromLongLong(s->tin);
    case 4: return PyLong_FromLongLong(s->tout);
    case 5: return PyFloat_FromDouble(s->cost);
    case 6: return PyFloat_FromDouble(s->dur);
    case 7: return PyFloat_FromDouble(s->ts);
    case 10: return Py_NewRef(s->stack);
    case 11: return PyLong_FromLongLong(s->tcached);
    case 12: return PyLong_FromLongLong(s->twrite);
    case 13: return PyLong_FromLongLong(s->treason);
    case 14: return PyLong_FromLong(1); /* priced */
    case 16: return Py_NewRef(s->source);
    case 17: return Py_NewRef(s->line);
    case 18: return Py_NewRef(s->run_id);
    default: return PyLong_FromLong(0); /* session, git, test, project: None in a row */
    }
}

/* the 20 fields of a slot kept as values into out[0:20] (new references); -1 if one failed
 * (the others are set, NULL where they failed: the caller's list or tuple frees them) */
static int
slot_fields(const RowSlot *s, PyObject **out)
{
    int failed = 0;
    for (int k = 0; k < 20; k++) {
        out[k] = slot_field(s, k);
        failed |= out[k] == NULL;
    }
    return failed ? -1 : 0;
}

static PyObject *
rows_item(Rows *self, Py_ssize_t i)
{
    if (i < 0 || i >= self->len - self->head) {
        PyErr_SetString(PyExc_IndexError, "Rows index out of range");
        return NULL;
    }
    RowSlot *s = &self->slots[self->head + i];
    if (s->row != NULL) {
        return Py_NewRef(s->row);
    }
    PyObject *row = PyTuple_New(20);
    if (row == NULL) {
        return NULL;
    }
    if (slot_fields(s, ((PyTupleObject *)row)->ob_item) < 0) {
        Py_DECREF(row);
        return NULL;
    }
    untrack_atomic(row);
    return row;
}

static PyObject *
rows_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if ((args != NULL && PyTuple_GET_SIZE(args) != 0) || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Rows() takes no arguments");
        return NULL;
    }
    Rows *self = (Rows *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->slots = NULL;
        self->head = self->len = self->cap = self->as_came = 0;
    }
    return (PyObject *)self;
}

static int
rows_traverse(Rows *self, visitproc visit, void *arg)
{
    /* a slot kept as values holds exact str, int and None only, which no cycle goes through */
    for (Py_ssize_t i = self->head; self->as_came > 0 && i < self->len; i++) {
        Py_VISIT(self->slots[i].row);
    }
    return 0;
}

static void
slot_release(RowSlot *s)
{
    if (s->row != NULL) {
        Py_DECREF(s->row);
    }
    else {
        Py_DECREF(s->name);
        Py_DECREF(s->model);
        Py_DECREF(s->provider);
        Py_DECREF(s->stack);
        Py_DECREF(s->source);
        Py_DECREF(s->line);
        Py_DECREF(s->run_id);
    }
}

static void
rows_release(Rows *self)
{
    RowSlot *slots = self->slots;
    Py_ssize_t head = self->head, n = self->len;
    self->slots = NULL;
    self->head = self->len = self->cap = self->as_came = 0;
    for (Py_ssize_t i = head; i < n; i++) {
        slot_release(&slots[i]);
    }
    PyMem_Free(slots);
}

/* n of a take_*(n): how many rows it takes (all, if fewer; none, if negative), or -1 */
static Py_ssize_t
take_count(Rows *self, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred()) {
        return -1;
    }
    Py_ssize_t size = self->len - self->head;
    return n < 0 ? 0 : (n > size ? size : n);
}

/* remove the first n rows (after they were read) */
static void
drop_front(Rows *self, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        RowSlot *s = &self->slots[self->head + i];
        if (s->row != NULL) {
            self->as_came--;
        }
        slot_release(s);
    }
    self->head += n;
    if (self->head == self->len) {
        self->head = self->len = 0;
    }
}

/* take_flat(n): the first n rows removed, their fields in one list, row after row: the
 * parameters of the writer's INSERT, with no tuple made for a row kept as values */
static PyObject *
rows_take_flat(Rows *self, PyObject *arg)
{
    Py_ssize_t n = take_count(self, arg);
    if (n < 0) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = self->slots[self->head + i].row;
        if (row != NULL && (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) != 20)) {
            PyErr_SetString(PyExc_TypeError, "take_flat(): a queued item is not a row of 20 fields");
            return NULL;
        }
    }
    PyObject *out = PyList_New(n * 20);
    if (out == NULL) {
        return NULL;
    }
    PyObject **o = ((PyListObject *)out)->ob_item;
    for (Py_ssize_t i = 0; i < n; i++, o += 20) {
        RowSlot *s = &self->slots[self->head + i];
        if (s->row == NULL) {
            if (slot_fields(s, o) < 0) {
                Py_DECREF(out);
                return NULL;
            }
            continue;
        }
        for (int k = 0; k < 20; k++) {
            o[k] = Py_NewRef(PyTuple_GET_ITEM(s->row, k));
        }
    }
    drop_front(self, n);
    return out;
}

/* column(k): field k of every row, in order (an item that is not a 20-field row: the item) */
static PyObject *
rows_column(Rows *self, PyObject *arg)
{
    Py_ssize_t k = PyLong_AsSsize_t(arg);
    if (k == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (k < 0 || k >= 20) {
        PyErr_SetString(PyExc_IndexError, "column(): a row has fields 0 to 19");
        return NULL;
    }
    Py_ssize_t n = self->len - self->head;
    PyObject *out = PyList_New(n);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        RowSlot *s = &self->slots[self->head + i];
        PyObject *v = s->row == NULL ? slot_field(s, (int)k)
                      : Py_NewRef(PyTuple_CheckExact(s->row) && PyTuple_GET_SIZE(s->row) == 20
                                  ? PyTuple_GET_ITEM(s->row, k) : s->row);
        if (v == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, v);
    }
    return out;
}

/* the fields of a row a uniform batch binds one by one (see take_uniform) */
static const int UNIFORM_FIELDS[8] = {3, 4, 5, 6, 7, 11, 12, 13};

/* take_uniform(n): the first n rows, removed, when each is kept as its values and they share
 * their strings and line (one call site, model and run: an app's usual batch), as (name, model,
 * provider, stack, source, line, run_id) and a list of the rest of their values, row after row
 * (tin, tout, cost, duration, ts, cached, write, reasoning): the writer binds the shared ones
 * once a statement. None, taking nothing, when they do not. */
static PyObject *
rows_take_uniform(Rows *self, PyObject *arg)
{
    Py_ssize_t n = take_count(self, arg);
    if (n <= 0) {
        return n < 0 ? NULL : Py_NewRef(Py_None);
    }
    RowSlot *a = &self->slots[self->head];
    for (Py_ssize_t i = 0; i < n; i++) {
        RowSlot *b = &self->slots[self->head + i];
        if (b->row != NULL || b->name != a->name || b->model != a->model || b->provider != a->provider
                || b->stack != a->stack || b->source != a->source || b->line != a->line || b->run_id != a->run_id) {
            Py_RETURN_NONE;
        }
    }
    PyObject *shared = PyTuple_Pack(7, a->name, a->model, a->provider, a->stack, a->source, a->line, a->run_id);
    PyObject *values = shared != NULL ? PyList_New(n * 8) : NULL;
    if (values == NULL) {
        Py_XDECREF(shared);
        return NULL;
    }
    PyObject **o = ((PyListObject *)values)->ob_item;
    int failed = 0;
    for (Py_ssize_t i = 0; i < n; i++, o += 8) {
        for (int k = 0; k < 8; k++) {
            o[k] = slot_field(&self->slots[self->head + i], UNIFORM_FIELDS[k]);
            failed |= o[k] == NULL;
        }
    }
    PyObject *out = failed ? NULL : PyTuple_Pack(2, shared, values);
    Py_DECREF(shared);
    Py_DECREF(values);
    if (out != NULL) {
        drop_front(self, n);
    }
    return out;
}

/* put_back(rows): put rows taken before back in front, in their order (a write to retry) */
static PyObject *
rows_put_back(Rows *self, PyObject *arg)
{
    PyObject *seq = PySequence_Fast(arg, "put_back() takes a sequence of rows");
    if (seq == NULL) {
        return NULL;
    }
    Rows *tmp = (Rows *)rows_new(&RowsType, NULL, NULL);
    int failed = tmp == NULL;
    for (Py_ssize_t i = 0; !failed && i < PySequence_Fast_GET_SIZE(seq); i++) {
        failed = rows_append(tmp, PySequence_Fast_GET_ITEM(seq, i)) < 0;
    }
    Py_DECREF(seq);
    for (Py_ssize_t i = self->head; !failed && i < self->len; i++) {
        /* the rest after them, moved over as they are (their references go with them) */
        RowSlot *slot = rows_grow(tmp);
        if (slot == NULL) {
            failed = 1;
            break;
        }
        *slot = self->slots[i];
        tmp->len++;
        if (slot->row != NULL) {
            tmp->as_came++;
        }
        self->head = i + 1;
    }
    if (failed) {
        Py_XDECREF(tmp);
        return NULL;
    }
    /* swap the arrays: tmp now holds what this had left (nothing) */
    RowSlot *old = self->slots;
    self->slots = tmp->slots;
    self->head = tmp->head;
    self->len = tmp->len;
    self->cap = tmp->cap;
    self->as_came = tmp->as_came;
    tmp->slots = NULL;
    tmp->head = tmp->len = tmp->cap = tmp->as_came = 0;
    PyMem_Free(old);
    Py_DECREF(tmp);
    Py_RETURN_NONE;
}

static PyObject *
rows_clear_method(Rows *self, PyObject *unused)
{
    (void)unused;
    rows_release(self);
    Py_RETURN_NONE;
}

static int
rows_clear(Rows *self)
{
    rows_release(self);
    return 0;
}

static void
rows_dealloc(Rows *self)
{
    PyObject_GC_UnTrack(self);
    rows_release(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PySequenceMethods rows_as_sequence = {
    .sq_length = (lenfunc)rows_length,
    .sq_item = (ssizeargfunc)rows_item,
};

static PyMethodDef rows_methods[] = {
    {"append", (PyCFunction)rows_append_method, METH_O, "Append a row (or a CallRecord)."},
    {"column", (PyCFunction)rows_column, METH_O,
     "column(k): field k of every row, in order (an item that is not a row: the item itself)."},
    {"take_uniform", (PyCFunction)rows_take_uniform, METH_O,
     "take_uniform(n): the first n rows as (shared strings and line, their other values), removed, "
     "when they share those; else None."},
    {"take_flat", (PyCFunction)rows_take_flat, METH_O,
     "take_flat(n): remove the first n rows and return their fields in one list, row after row."},
    {"put_back", (PyCFunction)rows_put_back, METH_O, "put_back(rows): put taken rows back in front."},
    {"clear", (PyCFunction)rows_clear_method, METH_NOARGS, "Remove every row."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RowsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tokenspy._speedups.Rows",
    .tp_doc = "The rows a tokenspy Tracker keeps or a Store queues: append, len, reading by index, taking.",
    .tp_basicsize = sizeof(Rows),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = rows_new,
    .tp_dealloc = (destructor)rows_dealloc,
    .tp_traverse = (traverseproc)rows_traverse,
    .tp_clear = (inquiry)rows_clear,
    .tp_as_sequence = &rows_as_sequence,
    .tp_methods = rows_methods,
};

/* records.append(row) for the records a booking is given: a Rows or a list */
static int
records_append(PyObject *records, PyObject *row)
{
    if (Py_IS_TYPE(records, &RowsType)) {
        return rows_append((Rows *)records, row);
    }
    return PyList_Append(records, row);
}

static inline int
records_ok(PyObject *records)
{
    return PyList_CheckExact(records) || Py_IS_TYPE(records, &RowsType);
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
    *s_cache_write_tokens, *s_reasoning_tokens, *s_defer_model, *s_defer_provider, *s_c_book, *s_settle_at, *s_settle, *s_internal_error, *zero, *one;

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

/* OpenAIAdapter.usage of a chat completion, from the models' fields: the model and the six
 * values of the usage tuple as new references (1), or 0 with nothing set when it is not one
 * (the Python side reads it then) */
static int
chat_usage(PyObject *result, PyObject **model, PyObject **v)
{
    int ok = 0;
    PyObject *fields = fields_of(result), *u = NULL, *details = NULL, *out = NULL;
    for (int i = 0; i < 6; i++) {
        v[i] = NULL;
    }
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
    *model = Py_NewRef(m);
    ok = 1;
done:
    if (!ok) {
        for (int i = 0; i < 6; i++) {
            Py_CLEAR(v[i]);
        }
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

/* the store's queue is long: wake its writer (Store.add's `self._wake.set()`) */
COLD static int
wake_writer(PyObject *wake)
{
    PyObject *r = wake != Py_None ? PyObject_CallNoArgs(wake) : Py_NewRef(Py_None);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* Store.add's `elif len(q) >= self.wake_at: self._wake.set()`: 0, or -1 on an error */
static int
wake_if_long(PyObject *queue, PyObject *wake_at, PyObject *wake)
{
    Py_ssize_t n = PyObject_Size(queue), at = PyLong_AsSsize_t(wake_at);
    if (n < 0 || (at == -1 && PyErr_Occurred())) {
        return -1;
    }
    return UNLIKELY(n >= at) ? wake_writer(wake) : 0;
}

/* Book the call at once, as recorder._settle's loop would book it later: 1 booked, 0 not
 * such a call (it is deferred instead), -1 an error. `state` is recorder._c_book (see
 * recorder._publish): (records, queue, queue_append, wake_at, wake, model, provider, run_id,
 * prices, unknown_user), where the tracker's rows go, the store's queue (None: no store) and
 * the model, provider and price (seven doubles) that loop books. */
static int
book_now(PlainRequest *self, PyObject *state, PyObject *resp_model, PyObject *const *uv, PyObject *user,
         double t0, double t1)
{
    if (!PyTuple_CheckExact(state) || PyTuple_GET_SIZE(state) != 10) {
        return 0;
    }
    PyObject *const *st = ((PyTupleObject *)state)->ob_item;
    PyObject *records = st[0], *queue = st[1], *model = st[5], *provider = st[6], *prices = st[8];
    PyObject *unknown = st[9];
    if (!records_ok(records) || !PyBytes_CheckExact(prices) || PyBytes_GET_SIZE(prices) != 7 * sizeof(double)
            || !PyTuple_CheckExact(unknown) || PyTuple_GET_SIZE(unknown) != 4
            || (user != Py_None && (!PyTuple_CheckExact(user) || PyTuple_GET_SIZE(user) != 4))) {
        return 0;
    }
    /* the loop's `rmodel != model or rprovider != provider` */
    int same = resp_model == model ? 1 : PyObject_RichCompareBool(resp_model, model, Py_EQ);
    if (same == 1 && self->provider != provider) {
        same = PyObject_RichCompareBool(self->provider, provider, Py_EQ);
    }
    if (same != 1) {
        PyErr_Clear();
        return 0;
    }
    long long u[6];
    for (int k = 0; k < 6; k++) {
        if (!small_int(uv[k], &u[k])) {
            return 0;
        }
    }
    if (!plain_counts(u)) {
        return 0;
    }
    double v[7];
    memcpy(v, PyBytes_AS_STRING(prices), sizeof v);
    /* time.time() of the start: the offset of the two clocks read now (see recorder._book) */
    double off = _PyTime_AsSecondsDouble(_PyTime_GetSystemClock()) - t1;
    PyObject *who = user == Py_None ? unknown : user;
    if ((queue == Py_None || Py_IS_TYPE(queue, &RowsType)) && Py_IS_TYPE(records, &RowsType)
            && shared_form(PyTuple_GET_ITEM(who, 0), model, provider, PyTuple_GET_ITEM(who, 3),
                           PyTuple_GET_ITEM(who, 1), PyTuple_GET_ITEM(who, 2), st[7])) {
        /* the values straight into the Rows (what it keeps of the tuple), no tuple made */
        double cost = plain_cost(u, v), dur = (t1 - t0) * 1000.0, ts = t0 + off;
        for (int k = 0; k < 2; k++) {
            PyObject *to = k == 0 ? records : queue;
            if (to != Py_None && rows_add((Rows *)to, PyTuple_GET_ITEM(who, 0), model, provider,
                                          PyTuple_GET_ITEM(who, 3), PyTuple_GET_ITEM(who, 1), PyTuple_GET_ITEM(who, 2),
                                          st[7], u, cost, dur, ts) < 0) {
                return -1;
            }
        }
        return queue != Py_None && wake_if_long(queue, st[3], st[4]) < 0 ? -1 : 1;
    }
    PyObject *row = plain_row(uv, u, who, model, provider, st[7], v, t0, t1, off, zero, one);
    if (row == NULL) {
        return -1;
    }
    int rc = records_append(records, row);
    if (rc == 0 && queue != Py_None) {
        PyObject *r = PyObject_CallOneArg(st[2], row);
        rc = r == NULL ? -1 : 0;
        Py_XDECREF(r);
        if (rc == 0) {
            rc = wake_if_long(queue, st[3], st[4]);
        }
    }
    Py_DECREF(row);
    return rc < 0 ? -1 : 1;
}

/* recorder.finish's deferral of the call, or its booking at once: 1 done, 0 neither, -1 error */
static int
defer(PlainRequest *self, PyObject *resp_model, PyObject *const *uv, PyObject *user, double t0, double t1,
      PyObject *model)
{
    PyObject *dm = item(self->recorder_dict, s_defer_model), *dp = item(self->recorder_dict, s_defer_provider);
    if (dm == NULL || dp != self->provider) {
        return 0;
    }
    /* held: a str subclass's __eq__ runs Python, and another thread may rebind the name */
    Py_INCREF(dm);
    int same = PyObject_RichCompareBool(resp_model, dm, Py_EQ);
    Py_DECREF(dm);
    if (same <= 0) {
        return same;
    }
    /* at once when nothing waits before it (records stay in call order) */
    PyObject *state = item(self->recorder_dict, s_c_book);
    if (state != NULL && state != Py_None) {
        Py_ssize_t waiting = PyObject_Size(self->pending);
        if (waiting < 0) {
            return -1;
        }
        if (waiting == 0) {
            Py_INCREF(state);
            int booked = book_now(self, state, resp_model, uv, user, t0, t1);
            Py_DECREF(state);
            if (booked != 0) {
                return booked;
            }
        }
    }
    PyObject *usage = PyTuple_Pack(6, uv[0], uv[1], uv[2], uv[3], uv[4], uv[5]);
    if (usage == NULL) {
        return -1;
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
    Py_DECREF(usage);
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
    PyObject *resp_model = NULL, *uv[6];
    int done = 0;
    if ((PyObject *)Py_TYPE(result) == args[1] && chat_usage(result, &resp_model, uv)) {
        done = defer(self, resp_model, uv, user, t0, t1, model);
        Py_DECREF(resp_model);
        for (int i = 0; i < 6; i++) {
            Py_DECREF(uv[i]);
        }
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
    NAME(s_c_book, "_c_book");
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
    if (!records_ok(records) || !PyTuple_CheckExact(vec) || PyTuple_GET_SIZE(vec) < 7
            || !PyTuple_CheckExact(unknown_user) || PyTuple_GET_SIZE(unknown_user) != 4) {
        PyErr_SetString(PyExc_TypeError, "book_plain(): records must be a list or Rows, vec a tuple of 7 floats and "
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
            ok = same == 1 && plain_counts(u);
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
        PyObject *who = user == Py_None ? unknown_user : user;
        PyObject *row = plain_row(((PyTupleObject *)usage)->ob_item, u, who, model, provider, run_id, v,
                                  PyFloat_AS_DOUBLE(t0o), PyFloat_AS_DOUBLE(t1o), off, zero_, one_);
        Py_DECREF(entry);
        if (row == NULL) {
            failed = 1;
            break;
        }
        int rc = records_append(records, row);
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
    if (MISS == NULL || PyModule_AddObjectRef(m, "MISS", MISS) < 0 || PyModule_AddType(m, &RowsType) < 0) {
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
