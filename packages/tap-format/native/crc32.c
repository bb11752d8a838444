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
 *
 * CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78: iSCSI, ext4, the hash GCS keeps of every
 * object) with the same calling convention: crc32c(bytes, initial). With SSE4.2 it is the CPU's `crc32`
 * instruction, 8 bytes per instruction on three independent streams at once (the instruction's latency is
 * three cycles, its throughput one per cycle), the three CRCs joined by shifting the first two over the
 * bytes of the ones after them with precomputed "append n zero bytes" tables (M. Adler's method,
 * crc32c.c, 2013); else slicing-by-8 tables (eight bytes per step). crc32cTable(bytes, initial) is the table
 * path on any CPU (for tests), sse42() whether the instruction path is in use.
 */
#include <node_api.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static uint32_t table[256];
static int simd = 0;
static uint32_t table_c[8][256]; /* CRC-32C slicing-by-8 */
static int sse42 = 0;
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

/* ---- CRC-32C ---- */

#define POLY_C 0x82f63b78u

static void init_table_c(void) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++) c = c & 1 ? POLY_C ^ (c >> 1) : c >> 1;
    table_c[0][n] = c;
  }
  for (uint32_t n = 0; n < 256; n++)
    for (int t = 1; t < 8; t++) table_c[t][n] = table_c[0][table_c[t - 1][n] & 0xff] ^ (table_c[t - 1][n] >> 8);
}

static inline uint64_t load64le(const uint8_t *p) {
  return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
         (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

/* `reg` is the running register (not inverted). */
static uint32_t crc32c_by_table(uint32_t reg, const uint8_t *p, size_t n) {
  while (n >= 8) {
    uint64_t w = load64le(p) ^ reg;
    reg = table_c[7][w & 0xff] ^ table_c[6][(w >> 8) & 0xff] ^ table_c[5][(w >> 16) & 0xff] ^
          table_c[4][(w >> 24) & 0xff] ^ table_c[3][(w >> 32) & 0xff] ^ table_c[2][(w >> 40) & 0xff] ^
          table_c[1][(w >> 48) & 0xff] ^ table_c[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) reg = table_c[0][(reg ^ *p++) & 0xff] ^ (reg >> 8);
  return reg;
}

#if defined(__x86_64__)
/*
 * Shifting a register over n zero bytes is linear over GF(2): a 32x32 bit matrix, applied byte by byte
 * through four 256-entry tables. A CRC of a ++ b is then shift(reg(a), |b|) ^ reg_from_zero(b).
 */
#define LONG_BLOCK 8192
#define SHORT_BLOCK 256
static uint32_t shift_long[4][256];
static uint32_t shift_short[4][256];

static uint32_t gf2_times(const uint32_t *mat, uint32_t vec) {
  uint32_t sum = 0;
  for (; vec; vec >>= 1, mat++)
    if (vec & 1) sum ^= *mat;
  return sum;
}

static void gf2_square(uint32_t *square, const uint32_t *mat) {
  for (int n = 0; n < 32; n++) square[n] = gf2_times(mat, mat[n]);
}

/* The operator that appends `len` zero bytes (len a power of two, at least 1). */
static void zeros_op(uint32_t *even, size_t len) {
  uint32_t odd[32];
  odd[0] = POLY_C; /* one zero bit */
  for (int n = 1; n < 32; n++) odd[n] = 1u << (n - 1);
  gf2_square(even, odd); /* two bits */
  gf2_square(odd, even); /* four bits */
  /* Eight bits (one byte) in even, then doubling until len is spent. */
  for (;;) {
    gf2_square(even, odd);
    len >>= 1;
    if (len == 0) return;
    gf2_square(odd, even);
    len >>= 1;
    if (len == 0) break;
  }
  for (int n = 0; n < 32; n++) even[n] = odd[n];
}

static void zeros_tables(uint32_t zeros[4][256], size_t len) {
  uint32_t op[32];
  zeros_op(op, len);
  for (uint32_t n = 0; n < 256; n++) {
    zeros[0][n] = gf2_times(op, n);
    zeros[1][n] = gf2_times(op, n << 8);
    zeros[2][n] = gf2_times(op, n << 16);
    zeros[3][n] = gf2_times(op, n << 24);
  }
}

/* An unaligned little-endian word (one mov on x86). */
static inline uint64_t load64(const uint8_t *p) {
  uint64_t w;
  memcpy(&w, p, 8);
  return w;
}

static inline uint32_t shift(uint32_t zeros[4][256], uint32_t reg) {
  return zeros[0][reg & 0xff] ^ zeros[1][(reg >> 8) & 0xff] ^ zeros[2][(reg >> 16) & 0xff] ^ zeros[3][reg >> 24];
}

__attribute__((target("sse4.2"))) static uint32_t crc32c_by_sse42(uint32_t reg, const uint8_t *p, size_t n) {
  uint64_t c0 = reg, c1, c2;
  /* Up to seven bytes to an 8-byte boundary. */
  while (n && ((uintptr_t)p & 7) != 0) {
    c0 = _mm_crc32_u8((uint32_t)c0, *p++);
    n--;
  }
  /* Three streams of LONG_BLOCK bytes each, then of SHORT_BLOCK, joined after each triple. */
  while (n >= 3 * LONG_BLOCK) {
    c1 = c2 = 0;
    const uint8_t *end = p + LONG_BLOCK;
    do {
      c0 = _mm_crc32_u64(c0, load64(p));
      c1 = _mm_crc32_u64(c1, load64(p + LONG_BLOCK));
      c2 = _mm_crc32_u64(c2, load64(p + 2 * LONG_BLOCK));
      p += 8;
    } while (p < end);
    c0 = shift(shift_long, (uint32_t)c0) ^ (uint32_t)c1;
    c0 = shift(shift_long, (uint32_t)c0) ^ (uint32_t)c2;
    p += 2 * LONG_BLOCK;
    n -= 3 * LONG_BLOCK;
  }
  while (n >= 3 * SHORT_BLOCK) {
    c1 = c2 = 0;
    const uint8_t *end = p + SHORT_BLOCK;
    do {
      c0 = _mm_crc32_u64(c0, load64(p));
      c1 = _mm_crc32_u64(c1, load64(p + SHORT_BLOCK));
      c2 = _mm_crc32_u64(c2, load64(p + 2 * SHORT_BLOCK));
      p += 8;
    } while (p < end);
    c0 = shift(shift_short, (uint32_t)c0) ^ (uint32_t)c1;
    c0 = shift(shift_short, (uint32_t)c0) ^ (uint32_t)c2;
    p += 2 * SHORT_BLOCK;
    n -= 3 * SHORT_BLOCK;
  }
  /* Whole words left, then bytes. */
  while (n >= 8) {
    c0 = _mm_crc32_u64(c0, load64(p));
    p += 8;
    n -= 8;
  }
  while (n--) c0 = _mm_crc32_u8((uint32_t)c0, *p++);
  return (uint32_t)c0;
}
#endif

static uint32_t crc32c_update(uint32_t crc, const uint8_t *p, size_t n, int hardware) {
#if defined(__x86_64__)
  if (hardware) return ~crc32c_by_sse42(~crc, p, n);
#endif
  (void)hardware;
  return ~crc32c_by_table(~crc, p, n);
}

/*
 * The arguments of crc32(bytes, initial?) and its kin: a Uint8Array and an optional initial value, which as
 * zlib.crc32's must be an integer in [0, 2^32). Throws and returns 0 when they are not.
 */
static int crc_args(napi_env env, napi_callback_info info, const char *name, const uint8_t **bytes,
                    size_t *length, uint32_t *initial) {
  size_t argc = 2;
  napi_value argv[2];
  napi_typedarray_type type;
  size_t offset;
  void *data;
  napi_value ab;
  napi_valuetype second = napi_undefined;
  double value = 0;
  char message[128];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_typedarray_info(env, argv[0], &type, length, &data, &ab, &offset) != napi_ok ||
      type != napi_uint8_array || (argc > 1 && napi_typeof(env, argv[1], &second) != napi_ok) ||
      (second != napi_undefined && napi_get_value_double(env, argv[1], &value) != napi_ok)) {
    snprintf(message, sizeof message, "cloudtap_crc32.%s(bytes: Uint8Array, initial?: number)", name);
    napi_throw_type_error(env, NULL, message);
    return 0;
  }
  if (!(value >= 0 && value <= 4294967295.0) || value != (double)(uint32_t)value) {
    snprintf(message, sizeof message, "cloudtap_crc32.%s: initial must be an integer in [0, 2^32)", name);
    napi_throw_range_error(env, NULL, message);
    return 0;
  }
  *bytes = (const uint8_t *)data;
  *initial = (uint32_t)value;
  return 1;
}

static napi_value uint32_result(napi_env env, uint32_t value) {
  napi_value result;
  napi_create_uint32(env, value, &result);
  return result;
}

static napi_value crc32_js(napi_env env, napi_callback_info info) {
  const uint8_t *data;
  size_t length;
  uint32_t initial;
  if (!crc_args(env, info, "crc32", &data, &length, &initial)) return NULL;
  return uint32_result(env, crc32_update(initial, data, length));
}

static napi_value crc32c_js(napi_env env, napi_callback_info info) {
  const uint8_t *data;
  size_t length;
  uint32_t initial;
  if (!crc_args(env, info, "crc32c", &data, &length, &initial)) return NULL;
  return uint32_result(env, crc32c_update(initial, data, length, sse42));
}

static napi_value crc32c_table_js(napi_env env, napi_callback_info info) {
  const uint8_t *data;
  size_t length;
  uint32_t initial;
  if (!crc_args(env, info, "crc32cTable", &data, &length, &initial)) return NULL;
  return uint32_result(env, crc32c_update(initial, data, length, 0));
}

static napi_value simd_js(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_get_boolean(env, simd, &result);
  return result;
}

static napi_value sse42_js(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_get_boolean(env, sse42, &result);
  return result;
}

static void init_once(void) {
  init_table();
  init_table_c();
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  simd = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
#endif
#if defined(__x86_64__)
  sse42 = __builtin_cpu_supports("sse4.2");
  if (sse42) {
    zeros_tables(shift_long, LONG_BLOCK);
    zeros_tables(shift_short, SHORT_BLOCK);
  }
#endif
}

static napi_value Init(napi_env env, napi_value exports) {
  pthread_once(&once, init_once);
  napi_value f;
  if (napi_create_function(env, "crc32", NAPI_AUTO_LENGTH, crc32_js, NULL, &f) != napi_ok ||
      napi_set_named_property(env, exports, "crc32", f) != napi_ok ||
      napi_create_function(env, "simd", NAPI_AUTO_LENGTH, simd_js, NULL, &f) != napi_ok ||
      napi_set_named_property(env, exports, "simd", f) != napi_ok ||
      napi_create_function(env, "crc32c", NAPI_AUTO_LENGTH, crc32c_js, NULL, &f) != napi_ok ||
      napi_set_named_property(env, exports, "crc32c", f) != napi_ok ||
      napi_create_function(env, "crc32cTable", NAPI_AUTO_LENGTH, crc32c_table_js, NULL, &f) != napi_ok ||
      napi_set_named_property(env, exports, "crc32cTable", f) != napi_ok ||
      napi_create_function(env, "sse42", NAPI_AUTO_LENGTH, sse42_js, NULL, &f) != napi_ok ||
      napi_set_named_property(env, exports, "sse42", f) != napi_ok)
    return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
