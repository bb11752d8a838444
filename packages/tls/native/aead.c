/*
 * cloudtap tls: AEAD record opening for node (Node-API, C) over the OpenSSL that node itself links.
 *
 * node:crypto opens a TLS record with a new cipher object each time (a GCM or ChaCha20-Poly1305 decipher
 * cannot be given a new nonce), which costs the key schedule, an object for the collector and a fresh output
 * buffer per record: about 3 us before the first byte is decrypted. Here one EVP_CIPHER_CTX per direction and
 * key epoch keeps the expanded key; each record only sets its nonce (EVP_DecryptInit_ex with no cipher and
 * no key keeps both), and decrypts into a buffer the caller gives.
 *
 * open(ctx, nonce, aad, ciphertext, tag, out) -> true when the tag verified (the plaintext, as long as the
 * ciphertext, is in out), false when it did not (out holds garbage). Throws only on misuse (bad arguments).
 *
 * The TLS 1.0-1.2 CBC suites get the same treatment: cbc(ctx, iv, ciphertext, out) decrypts whole blocks
 * without padding removal (the caller checks the TLS padding), and hmac(mac, header, data, out) computes the
 * record MAC with a context that keeps the keyed state (HMAC_Init_ex with no key resets to it).
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <node_api.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                     \
  do {                                                                  \
    if ((call) != napi_ok) {                                            \
      napi_throw_error(env, NULL, "cloudtap_aead: " #call " failed");  \
      return NULL;                                                      \
    }                                                                   \
  } while (0)

/* What a handle holds, checked on every call: a context is only ever used as what it was made for. */
enum { KIND_AEAD = 0x41454144, KIND_CBC = 0x43424321, KIND_HMAC = 0x484d4143 };

typedef struct {
  uint32_t kind;
  EVP_CIPHER_CTX *cipher;
  HMAC_CTX *hmac;
} handle_t;

static void free_handle(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  handle_t *h = (handle_t *)data;
  if (h->cipher) EVP_CIPHER_CTX_free(h->cipher);
  if (h->hmac) HMAC_CTX_free(h->hmac);
  free(h);
}

static handle_t *handle_of(napi_env env, napi_value v, uint32_t kind) {
  void *p;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL || ((handle_t *)p)->kind != kind) return NULL;
  return (handle_t *)p;
}

static napi_value wrap(napi_env env, handle_t *h) {
  napi_value external;
  if (napi_create_external(env, h, free_handle, NULL, &external) != napi_ok) {
    free_handle(env, h, NULL);
    napi_throw_error(env, NULL, "cloudtap_aead: napi_create_external failed");
    return NULL;
  }
  return external;
}

static int bytes_of(napi_env env, napi_value v, uint8_t **data, size_t *length) {
  napi_typedarray_type type;
  size_t n;
  void *p;
  napi_value ab;
  size_t offset;
  if (napi_get_typedarray_info(env, v, &type, &n, &p, &ab, &offset) != napi_ok || type != napi_uint8_array)
    return 0;
  *data = (uint8_t *)p;
  *length = n;
  return 1;
}

/* create(kind, key): 0 AES-128-GCM, 1 AES-256-GCM, 2 ChaCha20-Poly1305, 3 AES-128-CBC, 4 AES-256-CBC,
 * 5 3DES-EDE-CBC (CBC: decryption without padding removal). */
static napi_value create(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t kind;
  uint8_t *key;
  size_t key_length;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &kind) != napi_ok || !bytes_of(env, argv[1], &key, &key_length)) {
    napi_throw_type_error(env, NULL, "cloudtap_aead.create(kind, key)");
    return NULL;
  }
  const EVP_CIPHER *cipher = kind == 0   ? EVP_aes_128_gcm()
                             : kind == 1 ? EVP_aes_256_gcm()
                             : kind == 2 ? EVP_chacha20_poly1305()
                             : kind == 3 ? EVP_aes_128_cbc()
                             : kind == 4 ? EVP_aes_256_cbc()
                             : kind == 5 ? EVP_des_ede3_cbc()
                                         : NULL;
  int aead = kind <= 2;
  if (cipher == NULL || (size_t)EVP_CIPHER_key_length(cipher) != key_length) {
    napi_throw_range_error(env, NULL, "cloudtap_aead.create: unknown kind or wrong key length");
    return NULL;
  }
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (ctx == NULL || EVP_DecryptInit_ex(ctx, cipher, NULL, NULL, NULL) != 1 ||
      (aead && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) != 1) ||
      (!aead && EVP_CIPHER_CTX_set_padding(ctx, 0) != 1) || EVP_DecryptInit_ex(ctx, NULL, NULL, key, NULL) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    napi_throw_error(env, NULL, "cloudtap_aead.create: OpenSSL refused the key");
    return NULL;
  }
  handle_t *h = calloc(1, sizeof *h);
  if (h == NULL) {
    EVP_CIPHER_CTX_free(ctx);
    napi_throw_error(env, NULL, "cloudtap_aead.create: out of memory");
    return NULL;
  }
  h->kind = aead ? KIND_AEAD : KIND_CBC;
  h->cipher = ctx;
  return wrap(env, h);
}

static napi_value open_record(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  handle_t *h = argc < 6 ? NULL : handle_of(env, argv[0], KIND_AEAD);
  uint8_t *nonce, *aad, *ct, *tag, *out;
  size_t nonce_length, aad_length, ct_length, tag_length, out_length;
  if (h == NULL || !bytes_of(env, argv[1], &nonce, &nonce_length) ||
      !bytes_of(env, argv[2], &aad, &aad_length) || !bytes_of(env, argv[3], &ct, &ct_length) ||
      !bytes_of(env, argv[4], &tag, &tag_length) || !bytes_of(env, argv[5], &out, &out_length) || nonce_length != 12 ||
      tag_length != 16 || out_length < ct_length || ct_length > INT32_MAX || aad_length > INT32_MAX) {
    napi_throw_type_error(env, NULL, "cloudtap_aead.open(ctx, nonce12, aad, ciphertext, tag16, out)");
    return NULL;
  }
  EVP_CIPHER_CTX *ctx = h->cipher;
  int ignored = 0, n = 0, ok = 0;
  if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) == 1 &&
      (aad_length == 0 || EVP_DecryptUpdate(ctx, NULL, &ignored, aad, (int)aad_length) == 1) &&
      (ct_length == 0 || EVP_DecryptUpdate(ctx, out, &n, ct, (int)ct_length) == 1) &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, tag) == 1) {
    int tail = 0;
    ok = EVP_DecryptFinal_ex(ctx, out + n, &tail) == 1;
  }
  napi_value result;
  CHECK(napi_get_boolean(env, ok, &result));
  return result;
}

/* cbc(ctx, iv, ciphertext, out): whole blocks, no padding removal. False on a length that is not whole blocks. */
static napi_value cbc(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  handle_t *h = argc < 4 ? NULL : handle_of(env, argv[0], KIND_CBC);
  uint8_t *iv, *ct, *out;
  size_t iv_length, ct_length, out_length;
  if (h == NULL || !bytes_of(env, argv[1], &iv, &iv_length) ||
      !bytes_of(env, argv[2], &ct, &ct_length) || !bytes_of(env, argv[3], &out, &out_length) || out_length < ct_length ||
      ct_length > INT32_MAX) {
    napi_throw_type_error(env, NULL, "cloudtap_aead.cbc(ctx, iv, ciphertext, out)");
    return NULL;
  }
  EVP_CIPHER_CTX *ctx = h->cipher;
  int n = 0, tail = 0, ok = 0;
  if ((size_t)EVP_CIPHER_CTX_iv_length(ctx) == iv_length && EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, iv) == 1 &&
      (ct_length == 0 || EVP_DecryptUpdate(ctx, out, &n, ct, (int)ct_length) == 1))
    ok = EVP_DecryptFinal_ex(ctx, out + n, &tail) == 1 && (size_t)(n + tail) == ct_length;
  napi_value result;
  CHECK(napi_get_boolean(env, ok, &result));
  return result;
}

/* hmacCreate(kind, key): 0 SHA-1, 1 SHA-256, 2 SHA-384. */
static napi_value hmac_create(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t kind;
  uint8_t *key;
  size_t key_length;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &kind) != napi_ok || !bytes_of(env, argv[1], &key, &key_length) ||
      key_length > INT32_MAX) {
    napi_throw_type_error(env, NULL, "cloudtap_aead.hmacCreate(kind, key)");
    return NULL;
  }
  const EVP_MD *md = kind == 0 ? EVP_sha1() : kind == 1 ? EVP_sha256() : kind == 2 ? EVP_sha384() : NULL;
  if (md == NULL) {
    napi_throw_range_error(env, NULL, "cloudtap_aead.hmacCreate: unknown kind");
    return NULL;
  }
  HMAC_CTX *h = HMAC_CTX_new();
  if (h == NULL || HMAC_Init_ex(h, key, (int)key_length, md, NULL) != 1) {
    HMAC_CTX_free(h);
    napi_throw_error(env, NULL, "cloudtap_aead.hmacCreate: OpenSSL refused the key");
    return NULL;
  }
  handle_t *handle = calloc(1, sizeof *handle);
  if (handle == NULL) {
    HMAC_CTX_free(h);
    napi_throw_error(env, NULL, "cloudtap_aead.hmacCreate: out of memory");
    return NULL;
  }
  handle->kind = KIND_HMAC;
  handle->hmac = h;
  return wrap(env, handle);
}

/* hmac(ctx, header, data, out) -> the MAC's length (written to out), or 0 on failure. */
static napi_value hmac(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  handle_t *handle = argc < 4 ? NULL : handle_of(env, argv[0], KIND_HMAC);
  uint8_t *header, *data, *out;
  size_t header_length, data_length, out_length;
  if (handle == NULL || !bytes_of(env, argv[1], &header, &header_length) || !bytes_of(env, argv[2], &data, &data_length) ||
      !bytes_of(env, argv[3], &out, &out_length) || out_length < EVP_MAX_MD_SIZE) {
    napi_throw_type_error(env, NULL, "cloudtap_aead.hmac(ctx, header, data, out64)");
    return NULL;
  }
  HMAC_CTX *h = handle->hmac;
  unsigned int length = 0;
  if (HMAC_Init_ex(h, NULL, 0, NULL, NULL) != 1 || HMAC_Update(h, header, header_length) != 1 ||
      HMAC_Update(h, data, data_length) != 1 || HMAC_Final(h, out, &length) != 1)
    length = 0;
  napi_value result;
  CHECK(napi_create_uint32(env, length, &result));
  return result;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_value f;
  CHECK(napi_create_function(env, "create", NAPI_AUTO_LENGTH, create, NULL, &f));
  CHECK(napi_set_named_property(env, exports, "create", f));
  CHECK(napi_create_function(env, "open", NAPI_AUTO_LENGTH, open_record, NULL, &f));
  CHECK(napi_set_named_property(env, exports, "open", f));
  CHECK(napi_create_function(env, "cbc", NAPI_AUTO_LENGTH, cbc, NULL, &f));
  CHECK(napi_set_named_property(env, exports, "cbc", f));
  CHECK(napi_create_function(env, "hmacCreate", NAPI_AUTO_LENGTH, hmac_create, NULL, &f));
  CHECK(napi_set_named_property(env, exports, "hmacCreate", f));
  CHECK(napi_create_function(env, "hmac", NAPI_AUTO_LENGTH, hmac, NULL, &f));
  CHECK(napi_set_named_property(env, exports, "hmac", f));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
