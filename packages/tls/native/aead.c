/*
 * cloudtap tls: AEAD record opening for node (Node-API, C) over the OpenSSL that node itself links.
 *
 * node:crypto opens a TLS record with a new cipher object each time (a GCM or ChaCha20-Poly1305 decipher
 * cannot be given a new nonce), which costs the key schedule, an object for the collector and a fresh output
 * buffer per record: about 3 us before the first byte is decrypted. Here one EVP_CIPHER_CTX per direction and
 * key epoch keeps the expanded key; each record only sets its nonce (EVP_DecryptInit_ex with no cipher and
 * no key keeps both), and decrypts into a buffer the caller gives.
 *
 * open(ctx, nonce, aad, ciphertext, tag, out) -> 1 when the tag verified (the plaintext, as long as the
 * ciphertext, is in out), 0 when it did not (out holds garbage). Throws only on misuse (bad arguments).
 */
#include <node_api.h>
#include <openssl/evp.h>
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

static void free_ctx(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  EVP_CIPHER_CTX_free((EVP_CIPHER_CTX *)data);
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

/* create(kind, key): kind 0 AES-128-GCM, 1 AES-256-GCM, 2 ChaCha20-Poly1305. */
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
  const EVP_CIPHER *cipher = kind == 0 ? EVP_aes_128_gcm() : kind == 1 ? EVP_aes_256_gcm() : kind == 2 ? EVP_chacha20_poly1305() : NULL;
  if (cipher == NULL || (size_t)EVP_CIPHER_key_length(cipher) != key_length) {
    napi_throw_range_error(env, NULL, "cloudtap_aead.create: unknown kind or wrong key length");
    return NULL;
  }
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (ctx == NULL || EVP_DecryptInit_ex(ctx, cipher, NULL, NULL, NULL) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) != 1 ||
      EVP_DecryptInit_ex(ctx, NULL, NULL, key, NULL) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    napi_throw_error(env, NULL, "cloudtap_aead.create: OpenSSL refused the key");
    return NULL;
  }
  napi_value external;
  if (napi_create_external(env, ctx, free_ctx, NULL, &external) != napi_ok) {
    EVP_CIPHER_CTX_free(ctx);
    napi_throw_error(env, NULL, "cloudtap_aead.create: napi_create_external failed");
    return NULL;
  }
  return external;
}

static napi_value open_record(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *p;
  uint8_t *nonce, *aad, *ct, *tag, *out;
  size_t nonce_length, aad_length, ct_length, tag_length, out_length;
  if (argc < 6 || napi_get_value_external(env, argv[0], &p) != napi_ok || !bytes_of(env, argv[1], &nonce, &nonce_length) ||
      !bytes_of(env, argv[2], &aad, &aad_length) || !bytes_of(env, argv[3], &ct, &ct_length) ||
      !bytes_of(env, argv[4], &tag, &tag_length) || !bytes_of(env, argv[5], &out, &out_length) || nonce_length != 12 ||
      tag_length != 16 || out_length < ct_length || ct_length > INT32_MAX || aad_length > INT32_MAX) {
    napi_throw_type_error(env, NULL, "cloudtap_aead.open(ctx, nonce12, aad, ciphertext, tag16, out)");
    return NULL;
  }
  EVP_CIPHER_CTX *ctx = (EVP_CIPHER_CTX *)p;
  int n = 0, ok = 0;
  if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) == 1 &&
      (aad_length == 0 || EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_length) == 1) &&
      (ct_length == 0 || EVP_DecryptUpdate(ctx, out, &n, ct, (int)ct_length) == 1) &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, tag) == 1) {
    int tail = 0;
    ok = EVP_DecryptFinal_ex(ctx, out + n, &tail) == 1;
  }
  napi_value result;
  CHECK(napi_get_boolean(env, ok, &result));
  return result;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_value f;
  CHECK(napi_create_function(env, "create", NAPI_AUTO_LENGTH, create, NULL, &f));
  CHECK(napi_set_named_property(env, exports, "create", f));
  CHECK(napi_create_function(env, "open", NAPI_AUTO_LENGTH, open_record, NULL, &f));
  CHECK(napi_set_named_property(env, exports, "open", f));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
