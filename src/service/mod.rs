//! The ttrpc service, both ends: a thin async shim over [`crate::manager`]. The server side
//! logs one line per request (volume type, root hash, mount point, result, duration — never
//! the volume option, which may carry secrets), runs each manager call on a blocking thread,
//! and maps [`ManagerError`](crate::manager::ManagerError) to a ttrpc status code with the
//! error's message. The client side connects lazily and retries while the daemon cannot be
//! reached. No decisions about volumes are made here.
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
mod log;
pub mod proto;
mod server;
pub mod status;

pub use address::{Address, AddressError, DEFAULT_LISTEN, VSOCK_CID_ANY};
pub use batch::{AddStoragesError, storage_message};
pub use client::{ClientError, ClientOptions, VolumeClient};
pub use handler::API_VERSION;
pub use log::{LogFormat, discard, logger};
pub use server::{Bound, Listening, ServeError, bind, serve};
