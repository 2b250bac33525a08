//! The kernel's uevents through a `NETLINK_KOBJECT_UEVENT` socket (multicast group 1, the
//! kernel's own messages; udev's are group 2 and never read). Safe code only: `nix`'s socket
//! API. The socket is an `OwnedFd`: dropping the subscription closes it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recvfrom, setsockopt,
    socket, sockopt,
};

use super::{Received, Uevent, UeventSource, Uevents};

/// The kernel's uevent multicast group.
const KERNEL_GROUP: u32 = 1;

/// Receive buffer asked for, so a burst of events (a disk with many partitions, a bus scan)
/// does not overflow it; an overflow is reported as [`Received::Lost`] anyway.
const RCVBUF: usize = 1 << 20;

/// Larger than any uevent (the kernel's limit is 2 KiB of fields), so a full buffer means a
/// cut message.
const MSG_BUF: usize = 16 << 10;

/// Subscribes to the kernel's uevents.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetlinkUevents;

/// One subscription: an open netlink socket.
#[derive(Debug)]
pub struct NetlinkSubscription {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl NetlinkSubscription {
    /// Opens and binds the socket.
    pub fn open() -> io::Result<Self> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::NetlinkKObjectUEvent,
        )?;
        // a smaller buffer still works; only overflows get likelier
        let _ = setsockopt(&fd, sockopt::RcvBuf, &RCVBUF);
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, KERNEL_GROUP))?;
        Ok(Self {
            fd,
            buf: vec![0; MSG_BUF],
        })
    }

    /// The socket, e.g. to check that it is closed after a drop.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// One message if one is ready: `None` when none is.
    fn try_read(&mut self) -> io::Result<Option<Received>> {
        match recvfrom::<NetlinkAddr>(self.fd.as_raw_fd(), &mut self.buf) {
            Ok((n, from)) => {
                // only the kernel (port 0) speaks for the kernel
                if from.is_none_or(|a| a.pid() != 0) {
                    return Ok(Some(Received::Idle));
                }
                if n >= self.buf.len() {
                    return Ok(Some(Received::Lost));
                }
                let msg = self.buf.get(..n).unwrap_or_default();
                Ok(Some(match Uevent::parse(msg) {
                    Some(ev) => Received::Event(ev),
                    None => Received::Idle,
                }))
            }
            Err(Errno::EAGAIN) => Ok(None),
            Err(Errno::ENOBUFS) => Ok(Some(Received::Lost)),
            Err(Errno::EINTR) => Ok(Some(Received::Idle)),
            Err(e) => Err(e.into()),
        }
    }
}

impl UeventSource for NetlinkSubscription {
    fn recv(&mut self, timeout: Duration) -> io::Result<Received> {
        if let Some(r) = self.try_read()? {
            return Ok(r);
        }
        let ms = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(0) | Err(Errno::EINTR) => return Ok(Received::Idle),
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(self.try_read()?.unwrap_or(Received::Idle))
    }
}

impl Uevents for NetlinkUevents {
    fn subscribe(&self) -> io::Result<Box<dyn UeventSource>> {
        Ok(Box::new(NetlinkSubscription::open()?))
    }
}
