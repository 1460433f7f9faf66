/*
 * A TCP echo server on raw libuv, written the way a careful libuv user would:
 * each connection reads into its own reusable buffer (--buffer_size, 256 KiB
 * by default like uvloop's, so that reads are sized alike); an echo first
 * tries uv_try_write (usually everything goes out right there, with no
 * request object and no callback), and only a remainder the socket did not
 * take is queued with uv_write. Until that write completes the buffer is
 * still in use, so reading stops (backpressure) and resumes in the write
 * callback: no allocation and no copy per message.
 *
 *   libuv_echo --port=0 [--buffer_size=BYTES]
 *   # prints "listening on 127.0.0.1:PORT"
 *
 * A peer for tools/bench/echo_bench.sh; see docs/benchmarks.md.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

static size_t buffer_size = 256 * 1024;

typedef struct {
  uv_tcp_t tcp; /* first member: a uv_tcp_t* is a Connection* */
  uv_write_t write_req;
  char buffer[]; /* buffer_size bytes */
} Connection;

static void OnClosed(uv_handle_t* handle) { free(handle); }

static void OnAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) {
  (void)suggested;
  Connection* c = (Connection*)handle;
  *buf = uv_buf_init(c->buffer, (unsigned)buffer_size);
}

static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);

static void OnWritten(uv_write_t* req, int status) {
  Connection* c = req->data;
  if (status < 0) {
    if (!uv_is_closing((uv_handle_t*)&c->tcp)) {
      uv_close((uv_handle_t*)&c->tcp, OnClosed);
    }
    return;
  }
  uv_read_start((uv_stream_t*)&c->tcp, OnAlloc, OnRead);
}

static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  Connection* c = (Connection*)stream;
  if (nread == 0) return; /* EAGAIN */
  if (nread < 0) {        /* UV_EOF or an error: either way, done */
    uv_close((uv_handle_t*)stream, OnClosed);
    return;
  }
  uv_buf_t out = uv_buf_init(buf->base, (unsigned)nread);
  int written = uv_try_write(stream, &out, 1);
  if (written == nread) return;
  if (written < 0 && written != UV_EAGAIN) {
    uv_close((uv_handle_t*)stream, OnClosed);
    return;
  }
  if (written > 0) {
    out.base += written;
    out.len -= (size_t)written;
  }
  /* The remainder still points into c->buffer: hold reads until it is out. */
  uv_read_stop(stream);
  c->write_req.data = c;
  if (uv_write(&c->write_req, stream, &out, 1, OnWritten) != 0) {
    uv_close((uv_handle_t*)stream, OnClosed);
  }
}

static void OnConnection(uv_stream_t* server, int status) {
  if (status < 0) {
    fprintf(stderr, "libuv_echo: accept: %s\n", uv_strerror(status));
    return;
  }
  Connection* c = malloc(sizeof(Connection) + buffer_size);
  if (c == NULL) abort();
  uv_tcp_init(server->loop, &c->tcp);
  if (uv_accept(server, (uv_stream_t*)&c->tcp) != 0) {
    uv_close((uv_handle_t*)&c->tcp, OnClosed);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t*)&c->tcp, OnAlloc, OnRead);
}

int main(int argc, char** argv) {
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    if (strncmp(argv[i], "--port=", 7) == 0) {
      port = atoi(argv[i] + 7);
    } else if (strncmp(argv[i], "--buffer_size=", 14) == 0 &&
               atoi(argv[i] + 14) > 0) {
      buffer_size = (size_t)atoi(argv[i] + 14);
    } else {
      fprintf(stderr, "usage: %s [--port=PORT] [--buffer_size=BYTES]\n",
              argv[0]);
      return 2;
    }
  }
  uv_loop_t* loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", port, &addr);
  uv_tcp_init(loop, &server);
  int rc = uv_tcp_bind(&server, (const struct sockaddr*)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t*)&server, 1024, OnConnection);
  if (rc != 0) {
    fprintf(stderr, "libuv_echo: listen on 127.0.0.1:%d: %s\n", port,
            uv_strerror(rc));
    return 1;
  }
  struct sockaddr_storage bound;
  int len = sizeof(bound);
  uv_tcp_getsockname(&server, (struct sockaddr*)&bound, &len);
  printf("listening on 127.0.0.1:%d\n",
         ntohs(((struct sockaddr_in*)&bound)->sin_port));
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
