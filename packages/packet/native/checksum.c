/*
 * cloudtap packet: the internet checksum's one's-complement sum (RFC 1071) for node (Node-API, C), fused
 * with the copy of the bytes it sums: a TCP or UDP segment's payload is summed while it is copied into the
 * frame, one pass over the bytes instead of a copy and a JavaScript loop.
 *
 * The sum is taken over little-endian 16-bit words and byte-swapped at the end (RFC 1071 section 2(B):
 * the sum is independent of byte order up to a swap), so that the words are plain loads: 16 bytes per step
 * with SSE2 (part of every x86-64 CPU), 8 with a 64-bit scalar accumulator elsewhere.
 *
 * copySum(src, srcAt, length, dst, dstAt, initial) -> copies src[srcAt, srcAt + length) to dst at dstAt and
 * returns the sum of those bytes as big-endian 16-bit words from srcAt (an odd last byte is the high byte of
 * a word), plus `initial` (a non-negative integer below 2^53), folded to 16 bits: what `sumRange` returns.
 * sum(src, at, length, initial) -> the same sum without the copy.
 */
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

/* The sum of the little-endian 16-bit words of p[0, n) (n even), unfolded; copied to `to` when not NULL. */
static uint64_t le_words(const uint8_t *p, size_t n, uint8_t *to) {
  uint64_t total = 0;
  size_t i = 0;
#if defined(__x86_64__)
  const __m128i low = _mm_set1_epi32(0xffff);
  const __m128i zero = _mm_setzero_si128();
  while (n - i >= 16) {
    /* Each 32-bit lane takes two 16-bit words a step: 2^15 steps stay below 2^32. */
    size_t steps = (n - i) / 16;
    if (steps > 32768) steps = 32768;
    __m128i acc = zero;
    for (size_t s = 0; s < steps; s++, i += 16) {
      __m128i v = _mm_loadu_si128((const __m128i *)(p + i));
      if (to) _mm_storeu_si128((__m128i *)(to + i), v);
      acc = _mm_add_epi32(acc, _mm_and_si128(v, low));
      acc = _mm_add_epi32(acc, _mm_srli_epi32(v, 16));
    }
    uint32_t lanes[4];
    _mm_storeu_si128((__m128i *)lanes, acc);
    total += (uint64_t)lanes[0] + lanes[1] + lanes[2] + lanes[3];
  }
#endif
  for (; n - i >= 8; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    if (to) memcpy(to + i, &w, 8);
    total += (w & 0xffff) + ((w >> 16) & 0xffff) + ((w >> 32) & 0xffff) + (w >> 48);
  }
  for (; i < n; i += 2) {
    total += (uint32_t)p[i] | ((uint32_t)p[i + 1] << 8);
    if (to) {
      to[i] = p[i];
      to[i + 1] = p[i + 1];
    }
  }
  return total;
}

static uint32_t fold(uint64_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint32_t)s;
}

/* Big-endian word sum of p[0, n) plus initial, folded; copied to `to` when not NULL. */
static uint32_t be_sum(const uint8_t *p, size_t n, uint8_t *to, uint64_t initial) {
  size_t even = n & ~(size_t)1;
  uint32_t le = fold(le_words(p, even, to));
  uint64_t s = initial + (uint32_t)(((le & 0xff) << 8) | (le >> 8));
  if (n & 1) {
    s += (uint32_t)p[n - 1] << 8;
    if (to) to[n - 1] = p[n - 1];
  }
  return fold(s);
}

static int get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *length) {
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  void *d;
  if (napi_get_typedarray_info(env, v, &type, length, &d, &ab, &offset) != napi_ok || type != napi_uint8_array)
    return 0;
  *data = d;
  return 1;
}

static int get_index(napi_env env, napi_value v, size_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0 && d <= 9007199254740991.0) || d != (double)(uint64_t)d)
    return 0;
  *out = (size_t)d;
  return 1;
}

static napi_value result(napi_env env, uint32_t v) {
  napi_value r;
  napi_create_uint32(env, v, &r);
  return r;
}

static napi_value copy_sum_js(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  uint8_t *src, *dst;
  size_t srcLength, dstLength, srcAt, length, dstAt, initial;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 6 ||
      !get_bytes(env, argv[0], &src, &srcLength) || !get_index(env, argv[1], &srcAt) ||
      !get_index(env, argv[2], &length) || !get_bytes(env, argv[3], &dst, &dstLength) ||
      !get_index(env, argv[4], &dstAt) || !get_index(env, argv[5], &initial)) {
    napi_throw_type_error(env, NULL,
                          "cloudtap_checksum.copySum(src: Uint8Array, srcAt, length, dst: Uint8Array, dstAt, "
                          "initial): integers >= 0");
    return NULL;
  }
  if (srcAt > srcLength || length > srcLength - srcAt || dstAt > dstLength || length > dstLength - dstAt) {
    napi_throw_range_error(env, NULL, "cloudtap_checksum.copySum: range outside the source or destination");
    return NULL;
  }
  /* Overlapping ranges would read bytes already written: not what a copy means, refused. */
  if (src + srcAt < dst + dstAt + length && dst + dstAt < src + srcAt + length && length > 0) {
    napi_throw_range_error(env, NULL, "cloudtap_checksum.copySum: source and destination overlap");
    return NULL;
  }
  return result(env, be_sum(src + srcAt, length, dst + dstAt, initial));
}

static napi_value sum_js(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  uint8_t *src;
  size_t srcLength, at, length, initial;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 ||
      !get_bytes(env, argv[0], &src, &srcLength) || !get_index(env, argv[1], &at) ||
      !get_index(env, argv[2], &length) || !get_index(env, argv[3], &initial)) {
    napi_throw_type_error(env, NULL, "cloudtap_checksum.sum(bytes: Uint8Array, at, length, initial): integers >= 0");
    return NULL;
  }
  if (at > srcLength || length > srcLength - at) {
    napi_throw_range_error(env, NULL, "cloudtap_checksum.sum: range outside the bytes");
    return NULL;
  }
  return result(env, be_sum(src + at, length, NULL, initial));
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_value f;
  if (napi_create_function(env, "copySum", NAPI_AUTO_LENGTH, copy_sum_js, NULL, &f) != napi_ok ||
      napi_set_named_property(env, exports, "copySum", f) != napi_ok ||
      napi_create_function(env, "sum", NAPI_AUTO_LENGTH, sum_js, NULL, &f) != napi_ok ||
      napi_set_named_property(env, exports, "sum", f) != napi_ok)
    return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
