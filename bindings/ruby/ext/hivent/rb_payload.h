/*
 * Conversion between Ruby objects and MessagePack bytes.
 *
 * Packing accepts Hash (String or Symbol keys), Array, String (UTF-8 or
 * US-ASCII as str, ASCII-8BIT as bin, other encodings converted to UTF-8),
 * Symbol (as str), Integer in the signed and unsigned 64-bit range, Float,
 * true, false, nil and Hivent::Ext.  Unpacking returns the same types, with
 * string map keys and UTF-8 or ASCII-8BIT strings.
 */
#ifndef HV_RB_PAYLOAD_H
#define HV_RB_PAYLOAD_H

#include <ruby.h>
#include <stddef.h>

/* Maximum nesting of arrays and maps, the top one included, in both
 * directions; scalars add no level, as in libhivent and hiventd.  The
 * limit also stops self-referencing arrays and hashes. */
#define HV_RB_MAX_DEPTH 64

/* Defines Hivent::Ext, the holder for MessagePack extension values, and
 * creates the key of the per-thread packing buffers. */
void hv_rb_payload_init(VALUE module);

/*
 * Packs @obj, which must be a Hash (nil packs as an empty map), into a new
 * ASCII-8BIT String.  Raises TypeError, ArgumentError or RangeError whose
 * message starts with the path of the field at fault, rooted at @root
 * (such as "payload.user.ids[2]").
 */
VALUE hv_rb_pack_map(VALUE obj, const char *root);

/*
 * Packs @obj as hv_rb_pack_map() does, but into a buffer that belongs to
 * the calling thread and is reused by its next call, which saves a String
 * and its growth on every emit.  Returns the bytes and stores their count
 * in @size.  The bytes stay valid until this thread packs again, so the
 * caller must hand them to a function that copies them before any Ruby
 * code runs on this thread.
 */
const void *hv_rb_pack_map_reused(VALUE obj, const char *root, size_t *size);

/* Packs any convertible value, not only a Hash, as hv_rb_pack_map(). */
VALUE hv_rb_pack_value(VALUE obj, const char *root);

/*
 * Decodes exactly one MessagePack value of @size bytes.  Raises
 * Hivent::PayloadError on truncated or malformed input, trailing bytes or
 * arrays and maps nested deeper than HV_RB_MAX_DEPTH.
 */
VALUE hv_rb_unpack(const void *data, size_t size);

#endif
