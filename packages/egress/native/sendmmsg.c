/*
 * cloudtap egress: a batched UDP sender for node (Node-API, C). Linux only.
 *
 * sendBatch() hands a whole batch of tunnel datagrams to the kernel with one sendmmsg(2) per socket. Runs of
 * datagrams that lie back to back in the batch, go to the same socket and have the same size (the last one
 * may be shorter) are sent as one UDP GSO super-datagram (UDP_SEGMENT, Linux 4.18+): the stack is walked
 * once per run instead of once per datagram. When the kernel refuses GSO, it is turned off for the process
 * and the datagrams are sent one by one.
 *
 * Sockets are non-blocking: a full send buffer is waited for (poll, at most WAIT_MS per attempt, a few
 * attempts, per socket and batch), then the socket's datagrams that still do not fit are counted as EAGAIN
 * and dropped, so the event loop is never held for long. Refused datagrams (ECONNREFUSED after an ICMP port unreachable, ENETUNREACH, ...)
 * are counted by errno and skipped; the rest of the batch is still sent.
 *
 * Sockets have IP_RECVERR / IPV6_RECVERR set: the ICMP reports that datagrams did not arrive (port
 * unreachable, host unreachable, ...) are read from each socket's error queue after a batch and counted by
 * errno, as "unreachable" reports. (sendmmsg(2) itself loses an error that hits a message after the first.)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <node_api.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

/* Kernels before 6.x accept at most 64 segments per GSO send. */
#define MAX_SEGMENTS 64
/* A GSO super-datagram carries at most this much UDP payload (the IP total length is 16 bits). */
#define MAX_GSO_BYTES 65000
#define MAX_MSGS 1024
#define WAIT_MS 10
#define WAIT_ATTEMPTS 5
#define MAX_ERROR_KINDS 16

/* 1: the kernel took a GSO send; -1: it refused one (GSO off); 0: not tried yet. */
static int gso_state = 0;

#define CHECK(call)                                                        \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error(env, NULL, "cloudtap_sendmmsg: " #call " failed"); \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

static napi_value make_int(napi_env env, int64_t v) {
  napi_value out;
  napi_create_int64(env, v, &out);
  return out;
}

static int get_int(napi_env env, napi_value v, int64_t *out) {
  return napi_get_value_int64(env, v, out) == napi_ok ? 0 : -1;
}

static int get_string(napi_env env, napi_value v, char *buf, size_t size) {
  size_t len;
  return napi_get_value_string_utf8(env, v, buf, size, &len) == napi_ok ? 0 : -1;
}

static void *typed_data(napi_env env, napi_value v, napi_typedarray_type want, size_t *length) {
  napi_typedarray_type type;
  void *data;
  napi_value buffer;
  size_t offset;
  if (napi_get_typedarray_info(env, v, &type, length, &data, &buffer, &offset) != napi_ok) return NULL;
  if (type != want) return NULL;
  return data;
}

static int fill_address(int family, const char *text, int port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof(*ss));
  if (family == 6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (text[0] != '\0' && inet_pton(AF_INET6, text, &a->sin6_addr) != 1) return -1;
    if (text[0] == '\0') a->sin6_addr = in6addr_any;
    *len = sizeof(*a);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (text[0] != '\0' && inet_pton(AF_INET, text, &a->sin_addr) != 1) return -1;
    if (text[0] == '\0') a->sin_addr.s_addr = htonl(INADDR_ANY);
    *len = sizeof(*a);
  }
  return 0;
}

/* open(family, bindAddress, bindPort, reuse, address, port, sndbuf) -> [fd, localPort] or [-errno, 0] */
static napi_value Open(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t family, bind_port, port, sndbuf;
  bool reuse;
  char bind_address[64], address[64];
  if (argc < 7 || get_int(env, argv[0], &family) || get_string(env, argv[1], bind_address, sizeof bind_address) ||
      get_int(env, argv[2], &bind_port) || napi_get_value_bool(env, argv[3], &reuse) != napi_ok ||
      get_string(env, argv[4], address, sizeof address) || get_int(env, argv[5], &port) ||
      get_int(env, argv[6], &sndbuf)) {
    napi_throw_type_error(env, NULL, "open(family, bindAddress, bindPort, reuse, address, port, sndbuf)");
    return NULL;
  }
  napi_value out;
  CHECK(napi_create_array_with_length(env, 2, &out));
  int err = 0;
  int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) err = errno;
  int one = 1;
  if (!err && reuse && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) err = errno;
  if (!err && setsockopt(fd, family == 6 ? SOL_IPV6 : SOL_IP, family == 6 ? IPV6_RECVERR : IP_RECVERR, &one,
                        sizeof one) < 0)
    err = errno;
  int size = (int)sndbuf;
  if (!err && sndbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size) < 0) err = errno;
  struct sockaddr_storage ss;
  socklen_t len;
  if (!err && fill_address((int)family, bind_address, (int)bind_port, &ss, &len) < 0) err = EINVAL;
  if (!err && bind(fd, (struct sockaddr *)&ss, len) < 0) err = errno;
  if (!err && (address[0] == '\0' || fill_address((int)family, address, (int)port, &ss, &len) < 0)) err = EINVAL;
  if (!err && connect(fd, (struct sockaddr *)&ss, len) < 0) err = errno;
  int local_port = 0;
  if (!err) {
    len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) err = errno;
    else local_port = ntohs(family == 6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
  }
  if (err) {
    if (fd >= 0) close(fd);
    napi_set_element(env, out, 0, make_int(env, -err));
    napi_set_element(env, out, 1, make_int(env, 0));
    return out;
  }
  napi_set_element(env, out, 0, make_int(env, fd));
  napi_set_element(env, out, 1, make_int(env, local_port));
  return out;
}

/* Counts by errno: pairs (errno, count) in `pairs`, `kinds` of them. */
struct counts {
  int kinds;
  int32_t *pairs;
};

struct tally {
  double sent, bytes;
  struct counts refused;     /* datagrams the kernel did not send */
  struct counts unreachable; /* ICMP reports that sent datagrams did not arrive */
};

static void count(struct counts *c, int err, int n) {
  for (int k = 0; k < c->kinds; k++) {
    if (c->pairs[2 * k] == err) {
      c->pairs[2 * k + 1] += n;
      return;
    }
  }
  if (c->kinds < MAX_ERROR_KINDS) {
    c->pairs[2 * c->kinds] = err;
    c->pairs[2 * c->kinds + 1] = n;
    c->kinds++;
  }
}

/* Reads a socket's error queue: each ICMP report counts once, by the errno it maps to. */
static void drain_reports(int fd, struct tally *t) {
  char control[256];
  char data[64];
  for (int n = 0; n < 4096; n++) {
    struct iovec iov = {.iov_base = data, .iov_len = sizeof data};
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    if (recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) return;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
      if (!((c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
            (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR)))
        continue;
      struct sock_extended_err ee;
      memcpy(&ee, CMSG_DATA(c), sizeof ee);
      if (ee.ee_origin == SO_EE_ORIGIN_ICMP || ee.ee_origin == SO_EE_ORIGIN_ICMP6) count(&t->unreachable, (int)ee.ee_errno, 1);
    }
  }
}

struct message {
  struct iovec iov;
  int segments;
  uint16_t segment;
  char control[CMSG_SPACE(sizeof(uint16_t))];
};

static void prepare(struct mmsghdr *h, struct message *m, int gso) {
  memset(&h->msg_hdr, 0, sizeof h->msg_hdr);
  h->msg_hdr.msg_iov = &m->iov;
  h->msg_hdr.msg_iovlen = 1;
  h->msg_len = 0;
  if (gso && m->segments > 1) {
    h->msg_hdr.msg_control = m->control;
    h->msg_hdr.msg_controllen = sizeof m->control;
    struct cmsghdr *c = CMSG_FIRSTHDR(&h->msg_hdr);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(c), &m->segment, sizeof(uint16_t));
  }
}

static int wait_writable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  return poll(&p, 1, WAIT_MS) > 0;
}

/* Sends messages [0, n) on fd; a GSO message the kernel refuses is split into single datagrams. */
static void send_messages(int fd, struct message *msgs, int n, struct tally *t) {
  /* Per thread (worker threads may load the addon too); a nested call for a GSO fallback re-prepares. */
  static _Thread_local struct mmsghdr hdrs[MAX_MSGS];
  int done = 0, waits = 0;
  while (done < n) {
    int gso = gso_state >= 0;
    for (int i = done; i < n; i++) prepare(&hdrs[i - done], &msgs[i], gso);
    int r = sendmmsg(fd, hdrs, (unsigned)(n - done), MSG_DONTWAIT);
    if (r > 0) {
      for (int i = 0; i < r; i++) {
        struct message *m = &msgs[done + i];
        t->sent += m->segments;
        t->bytes += hdrs[i].msg_len;
        if (m->segments > 1) gso_state = 1;
      }
      done += r;
      waits = 0;
      continue;
    }
    int err = errno;
    struct message *m = &msgs[done];
    if ((err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) && waits < WAIT_ATTEMPTS) {
      waits++;
      wait_writable(fd);
      continue;
    }
    if ((err == EINVAL || err == EIO || err == ENOPROTOOPT || err == EOPNOTSUPP) && m->segments > 1 && gso) {
      /* No GSO here: send this run one datagram at a time, then go on without GSO. */
      gso_state = -1;
      struct message single[MAX_SEGMENTS];
      int parts = 0;
      uint8_t *base = (uint8_t *)m->iov.iov_base;
      size_t left = m->iov.iov_len;
      for (int s = 0; s < m->segments; s++) {
        size_t len = left < m->segment ? left : m->segment;
        single[parts].iov.iov_base = base;
        single[parts].iov.iov_len = len;
        single[parts].segments = 1;
        single[parts].segment = (uint16_t)len;
        parts++;
        base += len;
        left -= len;
      }
      send_messages(fd, single, parts, t);
      done++;
      continue;
    }
    if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
      /* Still no room after waiting: what is left for this socket is dropped now, without more waits. */
      for (int i = done; i < n; i++) count(&t->refused, err, msgs[i].segments);
      return;
    }
    /* Refused: count this message's datagrams and go on with the next. */
    count(&t->refused, err, m->segments);
    done++;
    waits = 0;
  }
}

/*
 * sendBatch(fds: Int32Array, bytes: Uint8Array, offsets: Uint32Array, lengths: Uint32Array,
 *           slots: Uint16Array, from, to, result: Float64Array(4), errors: Int32Array(64))
 * result = [datagrams sent, bytes sent, refusal kinds, report kinds]; errors = (errno, count) pairs: refusals
 * at [0, 32), ICMP reports at [32, 64).
 */
static napi_value SendBatch(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  size_t nfds, nbytes, noff, nlen, nslots, nres, nerr;
  int64_t from, to;
  int32_t *fds = argc == 9 ? typed_data(env, argv[0], napi_int32_array, &nfds) : NULL;
  uint8_t *bytes = fds ? typed_data(env, argv[1], napi_uint8_array, &nbytes) : NULL;
  uint32_t *offsets = bytes ? typed_data(env, argv[2], napi_uint32_array, &noff) : NULL;
  uint32_t *lengths = offsets ? typed_data(env, argv[3], napi_uint32_array, &nlen) : NULL;
  uint16_t *slots = lengths ? typed_data(env, argv[4], napi_uint16_array, &nslots) : NULL;
  double *result = slots ? typed_data(env, argv[7], napi_float64_array, &nres) : NULL;
  int32_t *errors = result ? typed_data(env, argv[8], napi_int32_array, &nerr) : NULL;
  if (!errors || get_int(env, argv[5], &from) || get_int(env, argv[6], &to) || nres < 3 ||
      nerr < 2 * MAX_ERROR_KINDS || from < 0 || to < from || (size_t)to > noff || (size_t)to > nlen ||
      (size_t)to > nslots) {
    napi_throw_type_error(env, NULL, "sendBatch: bad arguments");
    return NULL;
  }
  for (int64_t i = from; i < to; i++) {
    if (slots[i] >= nfds || (uint64_t)offsets[i] + lengths[i] > nbytes) {
      napi_throw_range_error(env, NULL, "sendBatch: a datagram outside the batch, or an unknown slot");
      return NULL;
    }
  }
  struct tally t = {0, 0, {0, errors}, {0, errors + 2 * MAX_ERROR_KINDS}};
  static _Thread_local struct message msgs[MAX_MSGS];
  /* One pass per slot in use, each in batch order, so every socket keeps its datagrams' order. */
  uint8_t done_slot[1024] = {0};
  for (int64_t first = from; first < to; first++) {
    uint16_t slot = slots[first];
    if (slot < 1024 && done_slot[slot]) continue;
    if (slot < 1024) done_slot[slot] = 1;
    int fd = fds[slot];
    int n = 0;
    for (int64_t i = first; i < to; i++) {
      if (slots[i] != slot) continue;
      struct message *prev = n > 0 ? &msgs[n - 1] : NULL;
      uint8_t *at = bytes + offsets[i];
      uint32_t len = lengths[i];
      /* Joins the previous run when back to back in memory, same size, the run not closed by a shorter one. */
      if (prev && (uint8_t *)prev->iov.iov_base + prev->iov.iov_len == at && len <= prev->segment &&
          prev->iov.iov_len == (size_t)prev->segment * prev->segments && prev->segments < MAX_SEGMENTS &&
          prev->iov.iov_len + len <= MAX_GSO_BYTES && gso_state >= 0) {
        prev->iov.iov_len += len;
        prev->segments++;
        continue;
      }
      if (n == MAX_MSGS) {
        send_messages(fd, msgs, n, &t);
        n = 0;
      }
      msgs[n].iov.iov_base = at;
      msgs[n].iov.iov_len = len;
      msgs[n].segments = 1;
      msgs[n].segment = (uint16_t)len;
      n++;
    }
    if (n > 0) send_messages(fd, msgs, n, &t);
  }
  /* ICMP reports: one poll over the sockets used, then read the queues that have something. */
  struct pollfd polls[1024];
  int np = 0;
  for (size_t s = 0; s < nfds && s < 1024; s++) {
    if (!done_slot[s]) continue;
    polls[np].fd = fds[s];
    polls[np].events = 0; /* POLLERR is always reported */
    polls[np].revents = 0;
    np++;
  }
  int pr = np > 0 ? poll(polls, (nfds_t)np, 0) : 0;
  for (int i = 0; pr > 0 && i < np; i++) {
    if (polls[i].revents & POLLERR) drain_reports(polls[i].fd, &t);
  }
  result[0] = t.sent;
  result[1] = t.bytes;
  result[2] = t.refused.kinds;
  result[3] = t.unreachable.kinds;
  return NULL;
}

static napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int64_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || get_int(env, argv[0], &fd)) {
    napi_throw_type_error(env, NULL, "close(fd)");
    return NULL;
  }
  if (fd >= 0) close((int)fd);
  return NULL;
}

static napi_value GsoEnabled(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  napi_get_boolean(env, gso_state == 1, &out);
  return out;
}

static const char *errno_name(int e) {
  switch (e) {
    case ECONNREFUSED: return "ECONNREFUSED";
    case ENETUNREACH: return "ENETUNREACH";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETDOWN: return "ENETDOWN";
    case EHOSTDOWN: return "EHOSTDOWN";
    case EAGAIN: return "EAGAIN";
    case ENOBUFS: return "ENOBUFS";
    case EMSGSIZE: return "EMSGSIZE";
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EIO: return "EIO";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EADDRINUSE: return "EADDRINUSE";
    case ENOTCONN: return "ENOTCONN";
    case EBADF: return "EBADF";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    default: return NULL;
  }
}

static napi_value ErrnoName(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int64_t e;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || get_int(env, argv[0], &e)) return NULL;
  const char *name = errno_name((int)e);
  char buf[24];
  if (!name) {
    snprintf(buf, sizeof buf, "ERRNO%d", (int)e);
    name = buf;
  }
  napi_value out;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &out);
  return out;
}

static napi_value StrError(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int64_t e;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || get_int(env, argv[0], &e)) return NULL;
  napi_value out;
  napi_create_string_utf8(env, strerror((int)e), NAPI_AUTO_LENGTH, &out);
  return out;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, Open, NULL, NULL, NULL, napi_default, NULL},
      {"sendBatch", NULL, SendBatch, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, Close, NULL, NULL, NULL, napi_default, NULL},
      {"gsoEnabled", NULL, GsoEnabled, NULL, NULL, NULL, napi_default, NULL},
      {"errnoName", NULL, ErrnoName, NULL, NULL, NULL, napi_default, NULL},
      {"strerror", NULL, StrError, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
