/*
 * cloudtap tap-format: CRC-32 (the zlib / gzip polynomial, reflected) for node (Node-API, C), with
 * carry-less multiplication (PCLMULQDQ) when the CPU has it.
 *
 * The method is folding (Gopal et al., "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ
 * Instruction", Intel, 2009): four 128-bit accumulators take 64 bytes per step, each folded forward by
 * multiplying with x^(512+32) and x^(512-32) mod P; then one accumulator by 128 bits at a time; then
 * 128 -> 64 -> 32 bits and a Barrett reduction. The constants below are those powers of x mod P, bit-reflected
 * (P = 0x104C11DB7). Bytes that do not fill a 16-byte block, and buffers under 64 bytes, go through a table.
 * node's zlib.crc32 runs about 6 GB/s here; this several times that, so checking a blob's frames no longer
 * costs a tenth of a stitch.
 *
 * crc32(bytes, initial) -> the CRC of bytes continued from `initial` (crc32(b, crc32(a)) == crc32(a ++ b)),
 * like zlib.crc32. simd() -> whether the CPU path is in use.
 */
#include <node_api.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

static uint32_t table[256];
static int simd = 0;
/* Worker threads load the module too: the table and the CPU check are set up once per process. */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_table(void) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    table[n] = c;
  }
}

static uint32_t by_table(uint32_t reg, const uint8_t *p, size_t n) {
  while (n--) reg = table[(reg ^ *p++) & 0xff] ^ (reg >> 8);
  return reg;
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

/* `reg` is the running CRC register (not inverted); len is a multiple of 16, at least 64. */
__attribute__((target("pclmul,sse4.1"))) static uint32_t by_folding(uint32_t reg, const uint8_t *p, size_t len) {
  const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596LL, 0x0154442bd4LL); /* x^(512+32), x^(512-32) */
  const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009eLL, 0x01751997d0LL); /* x^(128+32), x^(128-32) */
  const __m128i k5 = _mm_set_epi64x(0, 0x0163cd6124LL);                /* x^64 */
  const __m128i poly = _mm_set_epi64x(0x01f7011641LL, 0x01db710641LL); /* mu, P */
  const __m128i low32 = _mm_setr_epi32(~0, 0, ~0, 0);

  __m128i a = _mm_loadu_si128((const __m128i *)(p + 0));
  __m128i b = _mm_loadu_si128((const __m128i *)(p + 16));
  __m128i c = _mm_loadu_si128((const __m128i *)(p + 32));
  __m128i d = _mm_loadu_si128((const __m128i *)(p + 48));
  a = _mm_xor_si128(a, _mm_cvtsi32_si128((int)reg));
  p += 64;
  len -= 64;

  while (len >= 64) {
    __m128i al = _mm_clmulepi64_si128(a, k1k2, 0x00), ah = _mm_clmulepi64_si128(a, k1k2, 0x11);
    __m128i bl = _mm_clmulepi64_si128(b, k1k2, 0x00), bh = _mm_clmulepi64_si128(b, k1k2, 0x11);
    __m128i cl = _mm_clmulepi64_si128(c, k1k2, 0x00), ch = _mm_clmulepi64_si128(c, k1k2, 0x11);
    __m128i dl = _mm_clmulepi64_si128(d, k1k2, 0x00), dh = _mm_clmulepi64_si128(d, k1k2, 0x11);
    a = _mm_xor_si128(_mm_xor_si128(al, ah), _mm_loadu_si128((const __m128i *)(p + 0)));
    b = _mm_xor_si128(_mm_xor_si128(bl, bh), _mm_loadu_si128((const __m128i *)(p + 16)));
    c = _mm_xor_si128(_mm_xor_si128(cl, ch), _mm_loadu_si128((const __m128i *)(p + 32)));
    d = _mm_xor_si128(_mm_xor_si128(dl, dh), _mm_loadu_si128((const __m128i *)(p + 48)));
    p += 64;
    len -= 64;
  }

  /* Four accumulators into one, then 16 bytes at a time. */
  __m128i x = a;
  const __m128i *rest[3] = {&b, &c, &d};
  for (int i = 0; i < 3; i++) {
    __m128i lo = _mm_clmulepi64_si128(x, k3k4, 0x00), hi = _mm_clmulepi64_si128(x, k3k4, 0x11);
    x = _mm_xor_si128(_mm_xor_si128(lo, hi), *rest[i]);
  }
  while (len >= 16) {
    __m128i lo = _mm_clmulepi64_si128(x, k3k4, 0x00), hi = _mm_clmulepi64_si128(x, k3k4, 0x11);
    x = _mm_xor_si128(_mm_xor_si128(lo, hi), _mm_loadu_si128((const __m128i *)p));
    p += 16;
    len -= 16;
  }

  /* 128 -> 64 bits. */
  __m128i t = _mm_clmulepi64_si128(x, k3k4, 0x10);
  x = _mm_xor_si128(_mm_srli_si128(x, 8), t);
  /* 64 -> 32 bits. */
  t = _mm_srli_si128(x, 4);
  x = _mm_clmulepi64_si128(_mm_and_si128(x, low32), k5, 0x00);
  x = _mm_xor_si128(x, t);
  /* Barrett reduction. */
  t = _mm_clmulepi64_si128(_mm_and_si128(x, low32), poly, 0x10);
  t = _mm_clmulepi64_si128(_mm_and_si128(t, low32), poly, 0x00);
  x = _mm_xor_si128(x, t);
  return (uint32_t)_mm_extract_epi32(x, 1);
}
#endif

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
  uint32_t reg = ~crc;
#if defined(__x86_64__) || defined(__i386__)
  if (simd && n >= 64) {
    size_t whole = n & ~(size_t)15;
    reg = by_folding(reg, p, whole);
    p += whole;
    n -= whole;
  }
#endif
  return ~by_table(reg, p, n);
}

static napi_value crc32_js(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_typedarray_type type;
  size_t length, offset;
  void *data;
  napi_value ab;
  uint32_t initial = 0;
  napi_valuetype second = napi_undefined;
  double value = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_typedarray_info(env, argv[0], &type, &length, &data, &ab, &offset) != napi_ok ||
      type != napi_uint8_array || (argc > 1 && napi_typeof(env, argv[1], &second) != napi_ok) ||
      (second != napi_undefined && napi_get_value_double(env, argv[1], &value) != napi_ok)) {
    napi_throw_type_error(env, NULL, "cloudtap_crc32.crc32(bytes: Uint8Array, initial?: number)");
    return NULL;
  }
  /* As zlib.crc32: an initial value must be an integer in [0, 2^32). */
  if (!(value >= 0 && value <= 4294967295.0) || value != (double)(uint32_t)value) {
    napi_throw_range_error(env, NULL, "cloudtap_crc32.crc32: initial must be an integer in [0, 2^32)");
    return NULL;
  }
  initial = (uint32_t)value;
  napi_value result;
  napi_create_uint32(env, crc32_update(initial, (const uint8_t *)data, length), &result);
  return result;
}

static napi_value simd_js(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_get_boolean(env, simd, &result);
  return result;
}

static void init_once(void) {
  init_table();
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  simd = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
#endif
}

static napi_value Init(napi_env env, napi_value exports) {
  pthread_once(&once, init_once);
  napi_value f;
  if (napi_create_function(env, "crc32", NAPI_AUTO_LENGTH, crc32_js, NULL, &f) != napi_ok ||
      napi_set_named_property(env, exports, "crc32", f) != napi_ok ||
      napi_create_function(env, "simd", NAPI_AUTO_LENGTH, simd_js, NULL, &f) != napi_ok ||
      napi_set_named_property(env, exports, "simd", f) != napi_ok)
    return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
