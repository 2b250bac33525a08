//! One accepted connection, guarded: it holds a place under the connection cap for as long as
//! it lives, and its reads enforce the limits before ttrpc sees the bytes — a frame header
//! declaring more than the frame limit closes the connection (ttrpc would allocate the whole
//! declared length, up to 4 MiB, before reading it); a frame must arrive whole within the frame
//! time once its first byte has; a connection with no request of its own in progress that
//! receives nothing for the idle time is closed; and a client that has many requests in
//! progress is not read from until one is answered; an answer the client does not take (a
//! write that cannot go on) for the frame time closes the connection, so a client that sends
//! requests and never reads cannot hold its place forever. Requests in progress are counted
//! from the frames passing by (request frames in, response frames out). Enforces only: the
//! numbers come from `ServeOptions` and the policy.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use slog::{Logger, debug, warn};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

use super::frames::{Event, Frames, TYPE_REQUEST, TYPE_RESPONSE};

/// Requests of one connection in progress at once; past it, the connection is not read from
/// until one is answered (each request read is held in memory, up to the frame limit).
pub(super) const MAX_PENDING_PER_CONNECTION: u64 = 16;

/// The limits one connection is held to.
#[derive(Debug, Clone, Copy)]
pub(super) struct ConnLimits {
    /// Largest frame payload accepted (bytes).
    pub(super) max_frame: u64,
    /// Longest time without a byte received while nothing of the connection is in progress.
    pub(super) idle: Duration,
    /// Longest time from a frame's first byte to its last, and longest a write may wait for
    /// the client to take what was sent.
    pub(super) frame: Duration,
}

/// An accepted connection under its limits.
pub(super) struct Guarded<S> {
    inner: S,
    limits: ConnLimits,
    log: Logger,
    /// Its place under the connection cap, given back when the connection is dropped.
    _place: OwnedSemaphorePermit,
    received: Frames,
    sent: Frames,
    requests: u64,
    responses: u64,
    /// When the frame being received started.
    frame_started: Option<Instant>,
    /// When the connection last received a whole frame or answered one.
    idle_since: Instant,
    timer: Pin<Box<Sleep>>,
    /// Since when writes wait for the client to read (none while they go through).
    write_blocked_since: Option<Instant>,
    /// Wakes the writer at the write deadline (the reader has its own `timer`).
    write_timer: Pin<Box<Sleep>>,
    /// The task reading, woken when an answer changes what it waits for.
    reader: Option<Waker>,
}

/// Why a connection is closed.
#[derive(Debug, Clone, Copy)]
enum Close {
    TooLarge(u32),
    FrameTime,
    Idle,
    WriteTime,
}

impl<S> Guarded<S> {
    /// Guards `inner`, which holds `place` under the connection cap; `log` names the peer.
    pub(super) fn new(
        inner: S,
        place: OwnedSemaphorePermit,
        limits: ConnLimits,
        log: Logger,
    ) -> Self {
        let now = Instant::now();
        Self {
            inner,
            limits,
            log,
            _place: place,
            received: Frames::default(),
            sent: Frames::default(),
            requests: 0,
            responses: 0,
            frame_started: None,
            idle_since: now,
            timer: Box::pin(tokio::time::sleep_until(now)),
            write_blocked_since: None,
            write_timer: Box::pin(tokio::time::sleep_until(now)),
            reader: None,
        }
    }

    fn pending(&self) -> u64 {
        self.requests.saturating_sub(self.responses)
    }

    /// Logs why the connection is closed, and the error that closes it.
    fn close(&self, why: Close) -> io::Error {
        match why {
            Close::TooLarge(length) => {
                warn!(self.log, "connection closed: a frame over the size limit";
                    "declared_bytes" => length, "limit_bytes" => self.limits.max_frame);
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "A frame of {length} bytes is over the limit of {} bytes",
                        self.limits.max_frame
                    ),
                )
            }
            Close::FrameTime => {
                warn!(self.log, "connection closed: a frame did not arrive whole in time";
                    "frame_timeout_ms" => self.limits.frame.as_millis());
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    "A frame did not arrive whole in time",
                )
            }
            Close::Idle => {
                debug!(self.log, "connection closed: idle";
                    "idle_timeout_ms" => self.limits.idle.as_millis());
                io::Error::new(io::ErrorKind::TimedOut, "The connection was idle too long")
            }
            Close::WriteTime => {
                warn!(self.log, "connection closed: the client did not take its answers in time";
                    "frame_timeout_ms" => self.limits.frame.as_millis(),
                    "requests_in_progress" => self.pending());
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    "The client did not take its answers in time",
                )
            }
        }
    }

    /// Follows the frames in bytes just received.
    fn on_received(&mut self, mut bytes: &[u8], now: Instant) -> Result<(), Close> {
        while let Some(event) = self.received.advance(&mut bytes) {
            match event {
                Event::Header(h) => {
                    if u64::from(h.length) > self.limits.max_frame {
                        return Err(Close::TooLarge(h.length));
                    }
                    if h.kind == TYPE_REQUEST {
                        self.requests += 1;
                    }
                    if self.received.at_boundary() {
                        self.frame_done(now);
                    }
                }
                Event::End => self.frame_done(now),
            }
        }
        if !self.received.at_boundary() && self.frame_started.is_none() {
            self.frame_started = Some(now);
        }
        Ok(())
    }

    fn frame_done(&mut self, now: Instant) {
        self.frame_started = None;
        self.idle_since = now;
    }

    /// Follows the frames in bytes just sent: an answer ends a request in progress.
    fn on_sent(&mut self, mut bytes: &[u8]) {
        while let Some(event) = self.sent.advance(&mut bytes) {
            if let Event::Header(h) = event
                && h.kind == TYPE_RESPONSE
            {
                self.responses += 1;
                self.idle_since = Instant::now();
                if let Some(w) = self.reader.take() {
                    w.wake();
                }
            }
        }
    }

    /// What a read waiting for bytes waits at most: the frame time while a frame is coming,
    /// the idle time while nothing of the connection is in progress, else no limit.
    fn read_deadline(&self) -> Option<(Instant, Close)> {
        match self.frame_started {
            Some(t) => Some((t + self.limits.frame, Close::FrameTime)),
            None if self.pending() == 0 => Some((self.idle_since + self.limits.idle, Close::Idle)),
            None => None,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.received.at_boundary() && this.pending() >= MAX_PENDING_PER_CONNECTION {
            // Woken by the next answer sent.
            this.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let res = this.on_received(&buf.filled()[before..], Instant::now());
                match res {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(why) => {
                        // ttrpc never sees the bytes of a refused frame.
                        buf.set_filled(before);
                        Poll::Ready(Err(this.close(why)))
                    }
                }
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                this.reader = Some(cx.waker().clone());
                if let Some((deadline, why)) = this.read_deadline() {
                    this.timer.as_mut().reset(deadline);
                    if this.timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(this.close(why)));
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        match res {
            Poll::Ready(Ok(n)) => {
                this.write_blocked_since = None;
                this.on_sent(&buf[..n.min(buf.len())]);
            }
            Poll::Pending => {
                let since = *this.write_blocked_since.get_or_insert_with(Instant::now);
                this.write_timer.as_mut().reset(since + this.limits.frame);
                if this.write_timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(this.close(Close::WriteTime)));
                }
            }
            Poll::Ready(Err(_)) => {}
        }
        res
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
