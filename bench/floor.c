/*
 * The floor of a user-space TCP proxy, as a reference point for bench/run.py.
 *
 * One thread, one epoll set, level-triggered; per chunk one recv() into a static
 * buffer and one send() to the other side; no parsing, no behavior, no metrics,
 * no timers; a blocking connect() to the backend (cheap on loopback). Whatever
 * this program cannot reach on a workload, no user-space proxy built on the
 * socket API reaches on that machine either: the difference to a direct
 * connection is then the second TCP connection's cost in the kernel.
 *
 * usage: floor LISTEN_PORT BACKEND_PORT   (both on 127.0.0.1)
 * build: cc -O2 -o floor bench/floor.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXFD 65536
#define BUF 65536

struct side {
    int peer;       /* the other socket of the pair, -1 when unused */
    char *pend;     /* bytes read from this side, not yet written to the peer */
    size_t off, len;
    int eof;        /* this side sent FIN (or failed) */
    int fin_sent;   /* that FIN was passed on to the peer */
};

static struct side s[MAXFD];
static int ep;
static char buf[BUF];

static void watch(int fd) {
    struct side *me = &s[fd];
    struct epoll_event ev = {.data.fd = fd, .events = 0};
    if (!me->eof && !me->pend) ev.events |= EPOLLIN;        /* read while nothing waits */
    if (s[me->peer].pend) ev.events |= EPOLLOUT;            /* write what the peer left */
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

static void drop_pair(int fd) {
    int p = s[fd].peer;
    for (int i = 0; i < 2; i++) {
        int f = i ? p : fd;
        free(s[f].pend);
        s[f] = (struct side){.peer = -1};
        close(f);
    }
}

static void after_write(int src) {
    /* the src->peer direction has nothing pending: pass on a FIN, close when both did */
    struct side *me = &s[src];
    int p = me->peer;
    if (me->eof && !me->fin_sent) {
        shutdown(p, SHUT_WR);
        me->fin_sent = 1;
    }
    if (me->fin_sent && s[p].fin_sent) {
        drop_pair(src);
        return;
    }
    watch(src);
    watch(p);
}

static int flush(int src) {
    /* write src's pending bytes to its peer; 0 when all went */
    struct side *me = &s[src];
    while (me->off < me->len) {
        ssize_t w = send(me->peer, me->pend + me->off, me->len - me->off, MSG_NOSIGNAL);
        if (w < 0) return errno == EAGAIN ? 1 : -1;
        me->off += (size_t)w;
    }
    free(me->pend);
    me->pend = NULL;
    return 0;
}

static void readable(int fd) {
    struct side *me = &s[fd];
    ssize_t n = recv(fd, buf, BUF, 0);
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
        me->eof = 1;
        after_write(fd);
        return;
    }
    ssize_t w = send(me->peer, buf, (size_t)n, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN) { drop_pair(fd); return; }
    if (w < 0) w = 0;
    if (w < n) {  /* the peer is full: keep the rest, stop reading this side */
        me->pend = malloc((size_t)(n - w));
        memcpy(me->pend, buf + w, (size_t)(n - w));
        me->off = 0;
        me->len = (size_t)(n - w);
        watch(fd);
        watch(me->peer);
    }
}

static void writable(int fd) {
    int src = s[fd].peer;
    int r = flush(src);
    if (r < 0) drop_pair(fd);
    else if (r == 0) after_write(src);
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: floor LISTEN_PORT BACKEND_PORT\n"); return 2; }
    int lport = atoi(argv[1]), bport = atoi(argv[2]), one = 1;
    for (int i = 0; i < MAXFD; i++) s[i].peer = -1;
    ep = epoll_create1(0);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in la = {.sin_family = AF_INET, .sin_port = htons(lport),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in ba = la;
    ba.sin_port = htons(bport);
    if (bind(l, (void *)&la, sizeof la) || listen(l, 4096)) { perror("floor: listen"); return 1; }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l};
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == l) {
                int c;
                while ((c = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    int b = socket(AF_INET, SOCK_STREAM, 0);
                    if (c >= MAXFD || b < 0 || b >= MAXFD || connect(b, (void *)&ba, sizeof ba)) {
                        close(c);
                        if (b >= 0) close(b);
                        continue;
                    }
                    ioctl(b, FIONBIO, &one);
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    s[c] = (struct side){.peer = b};
                    s[b] = (struct side){.peer = c};
                    struct epoll_event e1 = {.events = EPOLLIN, .data.fd = c};
                    struct epoll_event e2 = {.events = EPOLLIN, .data.fd = b};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &e1);
                    epoll_ctl(ep, EPOLL_CTL_ADD, b, &e2);
                }
                continue;
            }
            if (s[fd].peer < 0) continue;  /* closed earlier in this batch */
            if (evs[i].events & EPOLLOUT) writable(fd);
            if (s[fd].peer >= 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) readable(fd);
        }
    }
}
