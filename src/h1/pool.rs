//! Idle upstream connections, kept per worker thread for the relay's next request to the
//! same server (as each nginx worker keeps its own), checked before reuse and swept while idle.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pingora::Result;
use socket2::SockRef;
use tokio::net::TcpStream;

use super::upstream::Upstream;

/// Most idle connections kept per upstream address, per worker thread.
const MAX_IDLE_PER_ADDR: usize = 128;

thread_local! {
    /// This thread's idle upstream connections, by address. A socket is woken by the runtime
    /// that registered it, so a connection handed to another thread's task would cost a
    /// cross-thread wake on every read; each worker keeps its own, as nginx's workers do.
    static IDLE: RefCell<HashMap<SocketAddr, Vec<Idle>>> = RefCell::new(HashMap::new());
    /// Whether this thread's pool has a sweeper task running.
    static SWEEPING: Cell<bool> = const { Cell::new(false) };
}

/// How often a thread's idle connections are checked for a close by the server or old age.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// Idle upstream connections for the relay, kept per worker thread.
#[derive(Debug)]
pub struct IdlePool {
    max_idle: Duration,
}

/// An idle connection in the pool.
#[derive(Debug)]
struct Idle {
    sock: TcpStream,
    since: Instant,
    /// Its last read drained it and tokio has reported nothing since (see [`IdlePool::take`]).
    drained: bool,
}

/// Whether an idle connection is still open and quiet (a close or stray bytes retire it).
/// It asks the socket itself: tokio's readiness may not have seen the close yet.
fn still_open(sock: &TcpStream) -> bool {
    let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    matches!(SockRef::from(sock).peek(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// Whether tokio has seen nothing arrive on `sock` (no bytes, no close) since its readiness
/// was last cleared. It asks no one but tokio, and leaves a no-op waker in place of the one
/// the socket's last reader left (which would otherwise keep that task's memory).
fn quiet(sock: &TcpStream) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    sock.poll_read_ready(&mut cx).is_pending()
}

impl IdlePool {
    /// A pool whose connections are dropped after `max_idle` unused.
    pub fn new(max_idle: Duration) -> Self {
        IdlePool { max_idle }
    }

    /// A connection to `addr`: an idle one if one is still good, else a new one.
    /// `resendable`: the request can be sent again whole (see `IdlePool::take`).
    pub async fn get(
        &self,
        addr: SocketAddr,
        connect_timeout: Duration,
        write_timeout: Duration,
        resendable: bool,
    ) -> Result<Upstream> {
        if let Some(sock) = self.take(addr, resendable) {
            let mut conn = Upstream::over(sock, addr, write_timeout);
            conn.reused = true;
            return Ok(conn);
        }
        Upstream::connect(addr, connect_timeout, write_timeout).await
    }

    /// The newest idle connection to `addr` that is still good.
    ///
    /// A connection whose last read drained it is good while tokio has seen nothing arrive
    /// since: that costs no system call, where asking the socket (as nginx does not) costs one
    /// per reuse. tokio learns of a close only at its reactor's next turn, so a server that
    /// closed within the last turn goes unseen; a request that can be sent again whole is
    /// then retried on a new connection (`relay`), one that cannot asks the socket.
    pub(super) fn take(&self, addr: SocketAddr, resendable: bool) -> Option<TcpStream> {
        IDLE.with_borrow_mut(|idle| {
            let list = idle.get_mut(&addr)?;
            while let Some(c) = list.pop() {
                let fresh = c.since.elapsed() < self.max_idle;
                if fresh && ((resendable && c.drained && quiet(&c.sock)) || still_open(&c.sock)) {
                    return Some(c.sock);
                }
            }
            None
        })
    }

    /// Keeps `conn` for a later request on this thread if its exchange ended cleanly.
    pub fn put(&self, conn: Upstream) {
        if !conn.reusable() {
            return;
        }
        let addr = conn.addr;
        let drained = conn.drained;
        let sock = conn.into_socket();
        // Asked even when not drained: it also lets go of the last reader's waker.
        let drained = quiet(&sock) && drained;
        let now = Instant::now();
        IDLE.with_borrow_mut(|idle| {
            let list = idle.entry(addr).or_default();
            // The oldest are at the front: drop the expired ones, and one more if full.
            let expired = list
                .iter()
                .take_while(|c| now.duration_since(c.since) >= self.max_idle)
                .count();
            list.drain(..expired);
            if list.len() >= MAX_IDLE_PER_ADDR {
                list.remove(0);
            }
            list.push(Idle {
                sock,
                since: now,
                drained,
            });
        });
        self.sweep_later();
    }

    /// Makes sure this thread's idle connections are swept: one a server closed would
    /// otherwise hold its descriptor (in CLOSE_WAIT) until the next request to that server.
    /// The sweeper ends when the pool is empty, so an idle proxy has no timer running.
    fn sweep_later(&self) {
        if SWEEPING.get() {
            return;
        }
        SWEEPING.set(true);
        let max_idle = self.max_idle;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SWEEP_EVERY).await;
                let left = IDLE.with_borrow_mut(|idle| {
                    idle.retain(|_, list| {
                        list.retain(|c| c.since.elapsed() < max_idle && still_open(&c.sock));
                        !list.is_empty()
                    });
                    idle.len()
                });
                if left == 0 {
                    SWEEPING.set(false);
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1::upstream::tests::{body, send, server, W};
    use std::io::Read;

    /// One `GET /` through `pool` to a server answering `ok`, the connection then kept idle.
    async fn exchange_and_keep(pool: &IdlePool, addr: SocketAddr) {
        let mut up = pool.get(addr, W, W, true).await.expect("connect");
        send(&mut up, "/").await;
        up.read_header().await.expect("head");
        assert_eq!(body(&mut up).await, b"ok");
        pool.put(up);
    }

    #[tokio::test]
    async fn a_resendable_request_trusts_tokio_and_one_that_is_not_asks_the_socket() {
        use std::io::Write;
        for resendable in [true, false] {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = l.local_addr().expect("addr");
            let (close, closing) = std::sync::mpsc::channel::<()>();
            let server = std::thread::spawn(move || {
                let (mut s, _) = l.accept().expect("accept");
                let mut got = [0u8; 1024];
                let _ = (&s).read(&mut got).expect("read");
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .expect("write");
                let _ = closing.recv();
            });
            let pool = IdlePool::new(W);
            exchange_and_keep(&pool, addr).await;
            // The server closes, and this task does not yield until `take`: tokio's reactor
            // has not turned since, so only the socket itself knows.
            close.send(()).expect("signal");
            server.join().expect("server");
            let closed = || IDLE.with_borrow(|i| !still_open(&i[&addr][0].sock));
            let deadline = Instant::now() + W;
            while !closed() {
                assert!(Instant::now() < deadline, "the close never arrived");
                std::thread::sleep(Duration::from_millis(1));
            }
            let taken = pool.take(addr, resendable);
            assert_eq!(taken.is_some(), resendable, "resendable: {resendable}");
        }
    }

    #[tokio::test]
    async fn the_sweeper_closes_what_a_server_closed() {
        let (addr, h) = server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
        let pool = IdlePool::new(W);
        exchange_and_keep(&pool, addr).await;
        assert_eq!(IDLE.with_borrow(|i| i.get(&addr).map_or(0, Vec::len)), 1);
        h.await.expect("server"); // it closes its side now
        tokio::time::sleep(SWEEP_EVERY + Duration::from_millis(500)).await;
        assert_eq!(IDLE.with_borrow(|i| i.get(&addr).map_or(0, Vec::len)), 0);
        assert!(!SWEEPING.get(), "the sweeper ends with an empty pool");
    }
}
