//! The ttrpc service, both ends: a thin async shim over [`crate::manager`]. The server side
//! logs one line per request (volume type, root hash, mount point, result, duration — never
//! the volume option, which may carry secrets), runs each manager call on a blocking thread,
//! and maps [`ManagerError`](crate::manager::ManagerError) to a ttrpc status code with the
//! error's message. It bounds its load ([`ServeOptions`]): requests running at once, one full
//! read per device (the manager's), and, under ttrpc, its own accept loop that admits
//! connections (a cap, vsock peers) and guards them (frame size and time, idle time). The
//! client side connects lazily and retries while the daemon cannot be reached. No decisions
//! about volumes are made here.
//!
//! The API is `proto/kata_volume.proto` (service `katavolume.v1.KataVolume`); the generated
//! messages, client and server glue are in [`proto`].
//!
//! ```no_run
//! # async fn demo(manager: std::sync::Arc<kata_volume::manager::VolumeManager>) -> Result<(), Box<dyn std::error::Error>> {
//! use kata_volume::service::{self, Address};
//! let addr: Address = "unix:///run/kata-volume.sock".parse()?;
//! let log = service::logger(slog::Level::Info, service::LogFormat::Auto);
//! let shutdown = async { let _ = tokio::signal::ctrl_c().await; };
//! service::serve(&addr, manager, log, shutdown).await?;
//! # Ok(())
//! # }
//! ```

mod address;
mod batch;
mod client;
mod handler;
mod inflight;
mod log;
mod options;
pub mod proto;
mod server;
pub mod status;
mod transport;

pub use address::{Address, AddressError, DEFAULT_LISTEN, VSOCK_CID_ANY};
pub use batch::{AddStoragesError, storage_message};
pub use client::{ClientError, ClientOptions, VolumeClient};
pub use handler::API_VERSION;
pub use log::{LogFormat, discard, logger};
pub use options::{
    DEFAULT_FRAME_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_QUEUE_WAIT, ServeOptions, VSOCK_CID_HOST, VsockPeer, VsockPeerError, VsockPeers,
};
pub use server::{Bound, Listening, ServeError, bind, serve};
pub use transport::{FRAME_HEADROOM, max_frame_bytes};
