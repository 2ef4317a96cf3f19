//! `global` (stub: replaced by the real participant).

use crate::node::Node;

pub(crate) fn start(node: &Node) {
    let _ = node.spawn_registered("global_name_server", |mut p| async move {
        loop {
            let m = p.receive().await;
            tracing::debug!("global_name_server: {m}");
        }
    });
}
