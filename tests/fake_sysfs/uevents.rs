//! A scripted uevent source: each `recv` runs the next step of a script (which may change
//! the fake sysfs tree, then return an event, a loss or an error); with the script done, it
//! idles for the time asked. It counts subscriptions, receives and closed subscriptions.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kata_volume::address::{Received, UeventSource, Uevents};

type Step = Box<dyn FnOnce() -> io::Result<Received> + Send>;
type Hook = Box<dyn FnOnce() + Send>;

#[derive(Default)]
pub struct Script {
    steps: Mutex<VecDeque<Step>>,
    on_subscribe: Mutex<Option<Hook>>,
    fail_subscribe: Mutex<bool>,
    pub subscribed: AtomicUsize,
    pub received: AtomicUsize,
    pub closed: Arc<AtomicUsize>,
}

impl Script {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The next `recv` runs `f` and returns what it returns.
    pub fn then(&self, f: impl FnOnce() -> io::Result<Received> + Send + 'static) -> &Self {
        self.steps.lock().unwrap().push_back(Box::new(f));
        self
    }

    /// Runs `f` inside `subscribe`, after the subscription exists.
    pub fn on_subscribe(&self, f: impl FnOnce() + Send + 'static) {
        *self.on_subscribe.lock().unwrap() = Some(Box::new(f));
    }

    pub fn fail_subscribe(&self) {
        *self.fail_subscribe.lock().unwrap() = true;
    }

    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.subscribed.load(Ordering::SeqCst),
            self.received.load(Ordering::SeqCst),
            self.closed.load(Ordering::SeqCst),
        )
    }
}

pub struct Scripted(pub Arc<Script>);

struct Sub {
    script: Arc<Script>,
}

impl Drop for Sub {
    fn drop(&mut self) {
        self.script.closed.fetch_add(1, Ordering::SeqCst);
    }
}

impl UeventSource for Sub {
    fn recv(&mut self, timeout: Duration) -> io::Result<Received> {
        self.script.received.fetch_add(1, Ordering::SeqCst);
        let step = self.script.steps.lock().unwrap().pop_front();
        match step {
            Some(f) => f(),
            None => {
                std::thread::sleep(timeout);
                Ok(Received::Idle)
            }
        }
    }
}

impl Uevents for Scripted {
    fn subscribe(&self) -> io::Result<Box<dyn UeventSource>> {
        if *self.0.fail_subscribe.lock().unwrap() {
            return Err(io::Error::from_raw_os_error(nix::libc::EPROTONOSUPPORT));
        }
        self.0.subscribed.fetch_add(1, Ordering::SeqCst);
        let sub = Sub {
            script: Arc::clone(&self.0),
        };
        if let Some(f) = self.0.on_subscribe.lock().unwrap().take() {
            f();
        }
        Ok(Box::new(sub))
    }
}
