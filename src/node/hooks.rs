//! The registration point of the layers above the node core: the calls the core makes
//! into them ([`Hooks`], given at start) and the state they keep per node
//! ([`Extensions`]). The core never names the services behind them.

use super::Node;
use crate::connection::message::SpawnRequest;
use crate::connection::ConnHandle;
use crate::sync::lock;
use crate::term::{Pid, Term};
use std::any::Any;
use std::sync::{Arc, Mutex};

/// What the node calls in the layers above it; `Node::start` fills them with the OTP
/// services.
#[derive(Clone, Copy)]
pub(crate) struct Hooks {
    /// A process died of an error (`crashed(node, pid, group_leader, reason)`): the
    /// crash report a BEAM node prints.
    pub crashed: fn(&Node, &Pid, &Pid, &Term),
    /// A connection came up (after the handshake) or went down.
    pub node_up: fn(&Node, &ConnHandle),
    pub node_down: fn(&Node, &ConnHandle),
    /// A peer asks to spawn a process here (`SPAWN_REQUEST`); the answer goes back on
    /// `conn`.
    pub spawn_request: fn(&Node, &Arc<ConnHandle>, SpawnRequest),
    /// The process holding a `global` name now (`{:global, Name}` as a destination,
    /// [`Dest::Global`](crate::Dest)), as `global:whereis_name/1` finds it.
    pub global_name: fn(&Node, &Term) -> Option<Pid>,
    /// The node begins to stop: the layers above stop what they run as applications,
    /// while the connections are still up; the node waits for the future.
    pub stopping: fn(&Node) -> futures::future::BoxFuture<'static, ()>,
}

/// State the layers above keep per node, one value per type, made on first use (the
/// registered functions, for instance).
#[derive(Default)]
pub(crate) struct Extensions(Mutex<Vec<Arc<dyn Any + Send + Sync>>>);

impl Extensions {
    /// The node's `T`, made with `T::default()` the first time it is asked for.
    pub(crate) fn get<T: Any + Send + Sync + Default>(&self) -> Arc<T> {
        let mut all = lock(&self.0);
        if let Some(found) = all.iter().find_map(|e| e.clone().downcast::<T>().ok()) {
            return found;
        }
        let made = Arc::new(T::default());
        all.push(made.clone());
        made
    }
}

impl Node {
    pub(crate) fn hooks(&self) -> &Hooks {
        &self.0.hooks
    }
}
