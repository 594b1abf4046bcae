/* Conversion between Ruby objects and MessagePack bytes. */
#include "rb_payload.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <ruby/encoding.h>

#include "hivent/hivent.h"
#include "rb_glue.h"

/* Maximum length of a field path in error messages; longer paths end in "...". */
#define HV_RB_PATH_MAX 240

static VALUE hv_rb_cExt = Qnil;

/* ------------------------------------------------------------------ */
/* Packing                                                             */
/* ------------------------------------------------------------------ */

/* A growable byte buffer that msgpack-c writes into. */
typedef struct hv_rb_bytes {
    char *data;
    size_t len;
    size_t cap;
} hv_rb_bytes_t;

/* One step of the path to the value being packed: a map key or an array
 * index.  The key String stays referenced from this C stack frame's
 * packer, so the conservative GC keeps it alive. */
typedef struct hv_rb_path_step {
    VALUE key;      /* Qundef for an array index */
    long index;
} hv_rb_path_step_t;

typedef struct hv_rb_packer {
    msgpack_packer pk;
    VALUE out;                       /* ASCII-8BIT String being filled, or Qnil */
    hv_rb_bytes_t *bytes;            /* buffer being filled when out is Qnil */
    const char *root;
    hv_rb_path_step_t steps[HV_RB_MAX_DEPTH];
    int depth;
    char path[HV_RB_PATH_MAX + 4];   /* room for "..." and the NUL */
} hv_rb_packer_t;

/* Per-thread buffer of hv_rb_pack_map_reused(), freed when the thread
 * exits.  Ruby threads are native threads, so each has its own. */
static pthread_key_t reused_key;
static int reused_key_ok;

/* A reused buffer larger than this is freed after the next pack, so one
 * huge payload does not pin its memory for the thread's lifetime. */
#define HV_RB_REUSED_KEEP (256 * 1024)

static void free_bytes(void *arg)
{
    hv_rb_bytes_t *b = arg;

    if (b) {
        free(b->data);
        free(b);
    }
}

static void pack_value(hv_rb_packer_t *p, VALUE obj);

static int append_string(void *data, const char *buf, size_t len)
{
    rb_str_buf_cat(*(VALUE *)data, buf, (long)len);
    return 0;
}

static int append_bytes(void *data, const char *buf, size_t len)
{
    hv_rb_bytes_t *b = data;

    if (len > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 512;
        char *grown;

        while (len > cap - b->len) {
            if (cap > SIZE_MAX / 2)
                rb_raise(rb_eNoMemError, "packed payload would exceed %zu bytes", SIZE_MAX / 2);
            cap *= 2;
        }
        grown = realloc(b->data, cap);
        if (!grown)
            rb_raise(rb_eNoMemError, "failed to allocate %zu bytes for a packed payload", cap);
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, buf, len);
    b->len += len;
    return 0;
}

/* Renders the path of the value being packed, such as
 * "payload.user.ids[2]", for an error message.  Paths are only rendered
 * when packing fails, so a successful pack formats no text.  A path
 * longer than HV_RB_PATH_MAX ends in "...". */
static const char *path_text(hv_rb_packer_t *p)
{
    size_t len = 0;
    int n = snprintf(p->path, HV_RB_PATH_MAX + 1, "%s", p->root);

    if (n < 0)
        n = 0;
    len = (size_t)n;
    for (int i = 0; i < p->depth && len <= HV_RB_PATH_MAX; i++) {
        const hv_rb_path_step_t *step = &p->steps[i];
        size_t room = HV_RB_PATH_MAX - len;

        if (step->key == Qundef)
            n = snprintf(p->path + len, room + 1, "[%ld]", step->index);
        else
            n = snprintf(p->path + len, room + 1, ".%.*s", (int)RSTRING_LEN(step->key),
                         RSTRING_PTR(step->key));
        if (n < 0)
            break;
        len += (size_t)n;
    }
    if (len > HV_RB_PATH_MAX)
        memcpy(p->path + HV_RB_PATH_MAX, "...", 4);
    return p->path;
}

static const char *class_name(VALUE obj)
{
    return rb_obj_classname(obj);
}

/* Raises ArgumentError for @str, a string value or, when @is_key is
 * set, a map key, which is shown because the path ends at its Hash. */
NORETURN(static void raise_invalid_text(hv_rb_packer_t *p, VALUE str, int is_key,
                                        const char *problem));
static void raise_invalid_text(hv_rb_packer_t *p, VALUE str, int is_key, const char *problem)
{
    if (is_key)
        rb_raise(rb_eArgError, "%s: map key %" PRIsVALUE " %s; map keys must be text",
                 path_text(p), rb_str_inspect(str), problem);
    rb_raise(rb_eArgError, "%s: string %s (use String#b for binary data)", path_text(p), problem);
}

/* Returns @str as a String whose bytes are valid UTF-8, or raises.
 * @is_key is set when @str is a map key. */
static VALUE utf8_string(hv_rb_packer_t *p, VALUE str, int is_key)
{
    rb_encoding *utf8 = rb_utf8_encoding();
    int index = ENCODING_GET_INLINED(str);
    rb_encoding *enc;
    char problem[96];

    /* UTF-8 and US-ASCII Strings, nearly all of them, skip the encoding
     * table lookups. */
    if (index == rb_utf8_encindex() || index == rb_usascii_encindex()) {
        if (rb_enc_str_coderange(str) == ENC_CODERANGE_BROKEN) {
            snprintf(problem, sizeof problem, "is not valid %s",
                     rb_enc_name(rb_enc_from_index(index)));
            raise_invalid_text(p, str, is_key, problem);
        }
        return str;
    }
    enc = rb_enc_get(str);
    if (enc != utf8 && !rb_enc_str_asciionly_p(str)) {
        VALUE converted = rb_str_conv_enc(str, enc, utf8);
        if (converted == str || rb_enc_get(converted) != utf8) {
            snprintf(problem, sizeof problem, "in %s cannot be converted to UTF-8", rb_enc_name(enc));
            raise_invalid_text(p, str, is_key, problem);
        }
        str = converted;
    }
    if (rb_enc_str_coderange(str) == ENC_CODERANGE_BROKEN) {
        snprintf(problem, sizeof problem, "is not valid %s", rb_enc_name(rb_enc_get(str)));
        raise_invalid_text(p, str, is_key, problem);
    }
    return str;
}

static void pack_string(hv_rb_packer_t *p, VALUE str)
{
    if (ENCODING_GET_INLINED(str) == rb_ascii8bit_encindex()) {
        msgpack_pack_bin(&p->pk, (size_t)RSTRING_LEN(str));
        msgpack_pack_bin_body(&p->pk, RSTRING_PTR(str), (size_t)RSTRING_LEN(str));
        return;
    }
    str = utf8_string(p, str, 0);
    msgpack_pack_str(&p->pk, (size_t)RSTRING_LEN(str));
    msgpack_pack_str_body(&p->pk, RSTRING_PTR(str), (size_t)RSTRING_LEN(str));
    RB_GC_GUARD(str);
}

/* Packs an Integer of any size that fits int64_t or uint64_t. */
static void pack_integer(hv_rb_packer_t *p, VALUE num)
{
    uint64_t magnitude = 0;
    int sign;

    if (FIXNUM_P(num)) {
        msgpack_pack_int64(&p->pk, (int64_t)FIX2LONG(num));
        return;
    }
    sign = rb_integer_pack(num, &magnitude, 1, sizeof magnitude, 0,
                           INTEGER_PACK_LSWORD_FIRST | INTEGER_PACK_NATIVE_BYTE_ORDER);
    if (sign == 0 || sign == 1) {
        msgpack_pack_uint64(&p->pk, magnitude);
        return;
    }
    if (sign == -1 && magnitude <= (uint64_t)INT64_MAX + 1) {
        /* -magnitude computed in unsigned arithmetic, exact down to INT64_MIN */
        msgpack_pack_int64(&p->pk, (int64_t)(0 - magnitude));
        return;
    }
    rb_raise(rb_eRangeError,
             "%s: integer %" PRIsVALUE " is outside the 64-bit range "
             "(-2**63 to 2**64-1)", path_text(p), num);
}

/* Packs @value one level below the current one, recording @key (a
 * String) or @index (when @key is Qundef) as its path step.  Only arrays
 * and maps call this, so p->depth counts the containers around @value. */
static void pack_child(hv_rb_packer_t *p, VALUE key, long index, VALUE value)
{
    p->steps[p->depth].key = key;
    p->steps[p->depth].index = index;
    p->depth++;
    pack_value(p, value);
    p->depth--;
}

/* Raises unless an array or map may start at the current level.  Like
 * libhivent, this counts arrays and maps only, the top one included, so
 * a scalar inside the 64th container is accepted.  The check keeps
 * p->depth below HV_RB_MAX_DEPTH whenever pack_child() records a step. */
static void check_container_depth(hv_rb_packer_t *p)
{
    if (p->depth >= HV_RB_MAX_DEPTH)
        rb_raise(rb_eArgError, "%s: arrays and maps are nested deeper than %d levels "
                 "(or the value contains itself)", path_text(p), HV_RB_MAX_DEPTH);
}

/* State of one Hash being packed.  @seen is a Hash of the packed key
 * strings when two keys of the Hash may pack to the same string, or Qnil. */
typedef struct hv_rb_hash_pack {
    hv_rb_packer_t *p;
    VALUE seen;
} hv_rb_hash_pack_t;

/* Key kinds found by classify_key(). */
enum {
    HV_RB_KEY_SYMBOL = 1,
    HV_RB_KEY_STRING = 2,
    HV_RB_KEY_OTHER_ENCODING = 4
};

static int classify_key(VALUE key, VALUE value, VALUE arg)
{
    int *kinds = (int *)arg;
    int index;

    (void)value;
    if (SYMBOL_P(key)) {
        *kinds |= HV_RB_KEY_SYMBOL;
    } else if (RB_TYPE_P(key, T_STRING)) {
        index = ENCODING_GET_INLINED(key);
        *kinds |= HV_RB_KEY_STRING;
        if (index != rb_utf8_encindex() && index != rb_usascii_encindex())
            *kinds |= HV_RB_KEY_OTHER_ENCODING;
    }
    return ST_CONTINUE;
}

/* Returns 1 when two keys of @hash may pack to the same MessagePack
 * string: a Symbol beside a String, a String in an encoding other than
 * UTF-8 or US-ASCII, or any keys of a compare_by_identity Hash.  Equal
 * UTF-8 and US-ASCII Strings are one key in an ordinary Hash, so Hashes
 * with only such keys, or only Symbols, need no check. */
static int keys_may_collide(VALUE hash)
{
    static ID id_compare_by_identity_p;
    int kinds = 0;

    if (!id_compare_by_identity_p)
        id_compare_by_identity_p = rb_intern("compare_by_identity?");
    /* A Hash subclass that redefines compare_by_identity? is checked
     * without calling it, so packing runs no Ruby code. */
    if (!rb_method_basic_definition_p(CLASS_OF(hash), id_compare_by_identity_p))
        return 1;
    if (RTEST(rb_funcall(hash, id_compare_by_identity_p, 0)))
        return 1;
    rb_hash_foreach(hash, classify_key, (VALUE)&kinds);
    return (kinds & HV_RB_KEY_OTHER_ENCODING) ||
           ((kinds & HV_RB_KEY_SYMBOL) && (kinds & HV_RB_KEY_STRING));
}

/* Raises when @key, already converted to a UTF-8 String, was packed
 * before in the same Hash. */
static void check_duplicate_key(hv_rb_hash_pack_t *h, VALUE key)
{
    VALUE packed = rb_utf8_str_new(RSTRING_PTR(key), RSTRING_LEN(key));

    if (rb_hash_lookup2(h->seen, packed, Qundef) != Qundef)
        rb_raise(rb_eArgError,
                 "%s: duplicate key %+" PRIsVALUE ": two keys of this Hash pack to the same "
                 "MessagePack string (a Symbol and a String, strings in different encodings "
                 "or a compare_by_identity Hash); keep only one of them",
                 path_text(h->p), packed);
    rb_hash_aset(h->seen, packed, Qtrue);
}

static int pack_pair(VALUE key, VALUE value, VALUE arg)
{
    hv_rb_hash_pack_t *h = (hv_rb_hash_pack_t *)arg;
    hv_rb_packer_t *p = h->p;

    if (SYMBOL_P(key))
        key = rb_sym2str(key);
    if (!RB_TYPE_P(key, T_STRING))
        rb_raise(rb_eTypeError, "%s: map key of class %s is not a String or Symbol",
                 path_text(p), class_name(key));
    key = utf8_string(p, key, 1);
    if (!NIL_P(h->seen))
        check_duplicate_key(h, key);
    msgpack_pack_str(&p->pk, (size_t)RSTRING_LEN(key));
    msgpack_pack_str_body(&p->pk, RSTRING_PTR(key), (size_t)RSTRING_LEN(key));
    pack_child(p, key, 0, value);
    return ST_CONTINUE;
}

static void pack_hash(hv_rb_packer_t *p, VALUE hash)
{
    long size = RHASH_SIZE(hash);
    hv_rb_hash_pack_t h = { p, Qnil };

    check_container_depth(p);
    if ((unsigned long)size > UINT32_MAX)
        rb_raise(rb_eArgError, "%s: hash has more than 2**32-1 entries", path_text(p));
    if (size >= 2 && keys_may_collide(hash))
        h.seen = rb_hash_new();
    msgpack_pack_map(&p->pk, (size_t)size);
    rb_hash_foreach(hash, pack_pair, (VALUE)&h);
    RB_GC_GUARD(h.seen);
}

static void pack_array(hv_rb_packer_t *p, VALUE ary)
{
    long len = RARRAY_LEN(ary);

    check_container_depth(p);
    if ((unsigned long)len > UINT32_MAX)
        rb_raise(rb_eArgError, "%s: array has more than 2**32-1 elements", path_text(p));
    msgpack_pack_array(&p->pk, (size_t)len);
    /* The length is read on every pass, so the bound stays correct even
     * if a later change lets Ruby code run here. */
    for (long i = 0; i < RARRAY_LEN(ary); i++)
        pack_child(p, Qundef, i, RARRAY_AREF(ary, i));
}

static void pack_ext(hv_rb_packer_t *p, VALUE ext)
{
    VALUE type = rb_struct_aref(ext, INT2FIX(0));
    VALUE data = rb_struct_aref(ext, INT2FIX(1));
    long code;

    if (!RB_INTEGER_TYPE_P(type) || !RB_TYPE_P(data, T_STRING))
        rb_raise(rb_eTypeError, "%s: Hivent::Ext needs an Integer type and a String data",
                 path_text(p));
    code = NUM2LONG(type);
    if (code < -128 || code > 127)
        rb_raise(rb_eRangeError, "%s: extension type %ld is outside -128..127",
                 path_text(p), code);
    msgpack_pack_ext(&p->pk, (size_t)RSTRING_LEN(data), (int8_t)code);
    msgpack_pack_ext_body(&p->pk, RSTRING_PTR(data), (size_t)RSTRING_LEN(data));
}

static void pack_value(hv_rb_packer_t *p, VALUE obj)
{
    switch (rb_type(obj)) {
    case T_NIL:    msgpack_pack_nil(&p->pk); break;
    case T_TRUE:   msgpack_pack_true(&p->pk); break;
    case T_FALSE:  msgpack_pack_false(&p->pk); break;
    case T_FIXNUM:
    case T_BIGNUM: pack_integer(p, obj); break;
    case T_FLOAT:  msgpack_pack_double(&p->pk, RFLOAT_VALUE(obj)); break;
    case T_STRING: pack_string(p, obj); break;
    case T_SYMBOL: pack_string(p, rb_sym2str(obj)); break;
    case T_HASH:   pack_hash(p, obj); break;
    case T_ARRAY:  pack_array(p, obj); break;
    default:
        if (hv_rb_cExt != Qnil && rb_obj_is_kind_of(obj, hv_rb_cExt)) {
            pack_ext(p, obj);
            break;
        }
        rb_raise(rb_eTypeError,
                 "%s: cannot convert %s to MessagePack (expected Hash, Array, "
                 "String, Symbol, Integer, Float, true, false or nil)",
                 path_text(p), class_name(obj));
    }
}

/* Starts a packer that fills a new String, or @bytes when not NULL. */
static void packer_init(hv_rb_packer_t *p, const char *root, hv_rb_bytes_t *bytes)
{
    p->root = root ? root : "value";
    p->depth = 0;
    p->path[0] = '\0';
    p->bytes = bytes;
    if (bytes) {
        p->out = Qnil;
        bytes->len = 0;
        msgpack_packer_init(&p->pk, bytes, append_bytes);
    } else {
        p->out = rb_str_buf_new(128);
        rb_enc_associate_index(p->out, rb_ascii8bit_encindex());
        msgpack_packer_init(&p->pk, &p->out, append_string);
    }
}

/* Packs @obj, which must be a Hash or nil, with @p already started. */
static void pack_map_into(hv_rb_packer_t *p, VALUE obj)
{
    if (NIL_P(obj)) {
        msgpack_pack_map(&p->pk, 0);
        return;
    }
    if (!RB_TYPE_P(obj, T_HASH))
        rb_raise(rb_eTypeError, "%s: expected a Hash, got %s", path_text(p), class_name(obj));
    pack_value(p, obj);
}

VALUE hv_rb_pack_value(VALUE obj, const char *root)
{
    hv_rb_packer_t p;

    packer_init(&p, root, NULL);
    pack_value(&p, obj);
    return p.out;
}

VALUE hv_rb_pack_map(VALUE obj, const char *root)
{
    hv_rb_packer_t p;

    packer_init(&p, root, NULL);
    pack_map_into(&p, obj);
    return p.out;
}

const void *hv_rb_pack_map_reused(VALUE obj, const char *root, size_t *size)
{
    hv_rb_bytes_t *bytes = pthread_getspecific(reused_key);
    hv_rb_packer_t p;

    if (!bytes) {
        bytes = calloc(1, sizeof *bytes);
        if (!bytes || pthread_setspecific(reused_key, bytes) != 0) {
            free(bytes);
            rb_raise(rb_eNoMemError, "failed to allocate the thread's payload buffer");
        }
    }
    if (bytes->cap > HV_RB_REUSED_KEEP) {
        free(bytes->data);
        bytes->data = NULL;
        bytes->cap = 0;
    }
    packer_init(&p, root, bytes);
    pack_map_into(&p, obj);
    *size = bytes->len;
    return bytes->data;
}

void hv_rb_payload_init(VALUE module)
{
    hv_rb_cExt = rb_struct_define_under(module, "Ext", "type", "data", NULL);
    rb_gc_register_mark_object(hv_rb_cExt);
    if (!reused_key_ok) {
        int err = pthread_key_create(&reused_key, free_bytes);

        if (err != 0)
            rb_raise(rb_eRuntimeError, "hivent: pthread_key_create failed: %s", strerror(err));
        reused_key_ok = 1;
    }
}

/* ------------------------------------------------------------------ */
/* Unpacking                                                           */
/* ------------------------------------------------------------------ */

typedef struct hv_rb_reader {
    const unsigned char *data;
    size_t size;
    size_t pos;
    int depth;      /* arrays and maps entered and not yet finished */
} hv_rb_reader_t;

static VALUE read_value(hv_rb_reader_t *r);

NORETURN(static void malformed(const hv_rb_reader_t *r, const char *what));
static void malformed(const hv_rb_reader_t *r, const char *what)
{
    char msg[160];

    snprintf(msg, sizeof msg, "malformed MessagePack at byte %zu of %zu: %s",
             r->pos, r->size, what);
    hv_rb_raise(HIVENT_ERR_PAYLOAD, msg);
}

/* Enters an array or map, or raises when that would nest arrays and maps
 * deeper than HV_RB_MAX_DEPTH levels, the top one included, which is how
 * libhivent and hiventd count. */
static void enter_container(hv_rb_reader_t *r)
{
    char msg[160];

    if (r->depth < HV_RB_MAX_DEPTH) {
        r->depth++;
        return;
    }
    snprintf(msg, sizeof msg, "MessagePack value at byte %zu of %zu: arrays and maps are "
             "nested deeper than %d levels", r->pos, r->size, HV_RB_MAX_DEPTH);
    hv_rb_raise(HIVENT_ERR_PAYLOAD, msg);
}

static const unsigned char *take(hv_rb_reader_t *r, size_t n)
{
    const unsigned char *at;

    if (n > r->size - r->pos)
        malformed(r, "value runs past the end of the data");
    at = r->data + r->pos;
    r->pos += n;
    return at;
}

static uint64_t read_be(hv_rb_reader_t *r, size_t n)
{
    const unsigned char *b = take(r, n);
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = (v << 8) | b[i];
    return v;
}

static int64_t read_signed(hv_rb_reader_t *r, size_t n)
{
    uint64_t v = read_be(r, n);
    unsigned bits = (unsigned)(n * 8);

    if (bits < 64 && (v & ((uint64_t)1 << (bits - 1))))
        v |= ~(uint64_t)0 << bits;
    return (int64_t)v;
}

static VALUE read_bytes(hv_rb_reader_t *r, size_t n, int utf8)
{
    const char *b = (const char *)take(r, n);

    return utf8 ? rb_utf8_str_new(b, (long)n) : rb_str_new(b, (long)n);
}

static VALUE read_array(hv_rb_reader_t *r, size_t n)
{
    VALUE ary;

    /* Every element takes at least one byte, which bounds hostile counts. */
    if (n > r->size - r->pos)
        malformed(r, "array count exceeds the remaining bytes");
    enter_container(r);
    ary = rb_ary_new_capa((long)n);
    for (size_t i = 0; i < n; i++)
        rb_ary_push(ary, read_value(r));
    r->depth--;
    return ary;
}

static VALUE read_map(hv_rb_reader_t *r, size_t n)
{
    VALUE hash;

    if (n > (r->size - r->pos) / 2)
        malformed(r, "map count exceeds the remaining bytes");
    enter_container(r);
    hash = rb_hash_new();
    for (size_t i = 0; i < n; i++) {
        VALUE key = read_value(r);
        rb_hash_aset(hash, key, read_value(r));
    }
    r->depth--;
    return hash;
}

static VALUE read_ext(hv_rb_reader_t *r, size_t n)
{
    int8_t type = (int8_t)read_be(r, 1);
    VALUE data = read_bytes(r, n, 0);

    return rb_struct_new(hv_rb_cExt, INT2FIX(type), data);
}

static VALUE read_float(hv_rb_reader_t *r, int wide)
{
    uint64_t bits = read_be(r, wide ? 8 : 4);

    if (wide) {
        double d;
        memcpy(&d, &bits, sizeof d);
        return DBL2NUM(d);
    } else {
        uint32_t narrow = (uint32_t)bits;
        float f;
        memcpy(&f, &narrow, sizeof f);
        return DBL2NUM((double)f);
    }
}

/* Decodes one value whose first byte is @b in 0xc0..0xdf. */
static VALUE read_tagged(hv_rb_reader_t *r, unsigned char b)
{
    switch (b) {
    case 0xc0: return Qnil;
    case 0xc2: return Qfalse;
    case 0xc3: return Qtrue;
    case 0xc4: return read_bytes(r, read_be(r, 1), 0);
    case 0xc5: return read_bytes(r, read_be(r, 2), 0);
    case 0xc6: return read_bytes(r, read_be(r, 4), 0);
    case 0xc7: return read_ext(r, read_be(r, 1));
    case 0xc8: return read_ext(r, read_be(r, 2));
    case 0xc9: return read_ext(r, read_be(r, 4));
    case 0xca: return read_float(r, 0);
    case 0xcb: return read_float(r, 1);
    case 0xcc: return ULL2NUM(read_be(r, 1));
    case 0xcd: return ULL2NUM(read_be(r, 2));
    case 0xce: return ULL2NUM(read_be(r, 4));
    case 0xcf: return ULL2NUM(read_be(r, 8));
    case 0xd0: return LL2NUM(read_signed(r, 1));
    case 0xd1: return LL2NUM(read_signed(r, 2));
    case 0xd2: return LL2NUM(read_signed(r, 4));
    case 0xd3: return LL2NUM(read_signed(r, 8));
    case 0xd4: return read_ext(r, 1);
    case 0xd5: return read_ext(r, 2);
    case 0xd6: return read_ext(r, 4);
    case 0xd7: return read_ext(r, 8);
    case 0xd8: return read_ext(r, 16);
    case 0xd9: return read_bytes(r, read_be(r, 1), 1);
    case 0xda: return read_bytes(r, read_be(r, 2), 1);
    case 0xdb: return read_bytes(r, read_be(r, 4), 1);
    case 0xdc: return read_array(r, read_be(r, 2));
    case 0xdd: return read_array(r, read_be(r, 4));
    case 0xde: return read_map(r, read_be(r, 2));
    case 0xdf: return read_map(r, read_be(r, 4));
    default:   malformed(r, "byte 0xc1 is never used");
    }
}

static VALUE read_value(hv_rb_reader_t *r)
{
    unsigned char b;
    VALUE v;

    b = *take(r, 1);
    if (b <= 0x7f)
        v = INT2FIX(b);
    else if (b <= 0x8f)
        v = read_map(r, b & 0x0f);
    else if (b <= 0x9f)
        v = read_array(r, b & 0x0f);
    else if (b <= 0xbf)
        v = read_bytes(r, b & 0x1f, 1);
    else if (b >= 0xe0)
        v = INT2FIX((int)(int8_t)b);
    else
        v = read_tagged(r, b);
    return v;
}

VALUE hv_rb_unpack(const void *data, size_t size)
{
    hv_rb_reader_t r = { data, size, 0, 0 };
    VALUE v;

    if (!data || size == 0) {
        r.size = 0;
        malformed(&r, "no data");
    }
    v = read_value(&r);
    if (r.pos != r.size)
        malformed(&r, "trailing bytes after the value");
    return v;
}
