//! EPMD's requests and replies, byte for byte as the daemon reads and writes them.

use super::{Node, Registry};

pub(super) const DUMP_REQ: u8 = 100;
pub(super) const KILL_REQ: u8 = 107;
pub(super) const NAMES_REQ: u8 = 110;
pub(super) const STOP_REQ: u8 = 115;
pub(super) const ALIVE2_X_RESP: u8 = 118;
pub(super) const PORT2_RESP: u8 = 119;
pub(super) const ALIVE2_REQ: u8 = 120;
pub(super) const ALIVE2_RESP: u8 = 121;
pub(super) const PORT_PLEASE2_REQ: u8 = 122;

/// Largest request body accepted. The largest real one, `ALIVE2_REQ` with a 255 character
/// UTF-8 name and as much extra data, is about 2 KiB.
pub(super) const MAX_REQUEST_LEN: usize = 4096;
/// Longest node name or extra field in bytes (255 characters of up to 4 bytes, as epmd).
pub(super) const MAX_SYMBOL_BYTES: usize = 255 * 4;
/// Longest node name in characters.
pub(super) const MAX_NAME_CHARS: usize = 255;
/// Creation epmd answers along with a failed registration.
pub(super) const FAILED_CREATION: u32 = 99;

/// A parsed `ALIVE2_REQ` (tag byte included in the slice it comes from).
#[derive(Debug, PartialEq)]
pub(super) struct Alive2 {
    pub(super) port: u16,
    pub(super) node_type: u8,
    pub(super) protocol: u8,
    pub(super) highest_version: u16,
    pub(super) lowest_version: u16,
    pub(super) name: Vec<u8>,
    pub(super) extra: Vec<u8>,
}

impl Alive2 {
    /// Parses the request; `None` for what epmd drops without a reply: no room for a
    /// name, lengths running past the end, or a NUL in the name.
    pub(super) fn parse(request: &[u8]) -> Option<Alive2> {
        if request.len() <= 13 {
            return None;
        }
        let u16_at = |at: usize| {
            request
                .get(at..at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
        };
        let name_len = usize::from(u16_at(9)?);
        let name = request.get(11..11 + name_len)?;
        let extra_len = usize::from(u16_at(11 + name_len)?);
        let extra = request.get(13 + name_len..13 + name_len + extra_len)?;
        if name.contains(&0) {
            return None;
        }
        Some(Alive2 {
            port: u16_at(1)?,
            node_type: request[3],
            protocol: request[4],
            highest_version: u16_at(5)?,
            lowest_version: u16_at(7)?,
            name: name.to_vec(),
            extra: extra.to_vec(),
        })
    }

    /// `ALIVE2_X_RESP` with a 32-bit creation for nodes speaking distribution version 6,
    /// the older `ALIVE2_RESP` with a creation in 1..=3 otherwise, as epmd answers.
    pub(super) fn reply(&self, creation: Option<u32>) -> Vec<u8> {
        let result = u8::from(creation.is_none());
        let creation = creation.unwrap_or(FAILED_CREATION);
        if self.highest_version >= 6 {
            let mut reply = vec![ALIVE2_X_RESP, result];
            reply.extend(creation.to_be_bytes());
            reply
        } else {
            let old = if result == 0 {
                (creation % 3 + 1) as u16
            } else {
                FAILED_CREATION as u16
            };
            let mut reply = vec![ALIVE2_RESP, result];
            reply.extend(old.to_be_bytes());
            reply
        }
    }
}

/// The `PORT2_RESP` to a `PORT_PLEASE2_REQ` for `name`; `None` for a name epmd would not
/// even look up (empty, containing NUL, not UTF-8, too long).
pub(super) fn port_please(registry: &Registry, name: &[u8]) -> Option<Vec<u8>> {
    let name = name.strip_suffix(&[0]).unwrap_or(name);
    let name = std::str::from_utf8(name).ok()?;
    if name.is_empty() || name.contains('\0') || name.chars().count() > MAX_NAME_CHARS {
        return None;
    }
    let Some(node) = registry.nodes.get(name) else {
        return Some(vec![PORT2_RESP, 1]);
    };
    let mut reply = vec![PORT2_RESP, 0];
    reply.extend(node.port.to_be_bytes());
    reply.push(node.node_type);
    reply.push(node.protocol);
    reply.extend(node.highest_version.to_be_bytes());
    reply.extend(node.lowest_version.to_be_bytes());
    // Both fit in u16: at most MAX_SYMBOL_BYTES, checked at registration.
    reply.extend((name.len() as u16).to_be_bytes());
    reply.extend(name.as_bytes());
    reply.extend((node.extra.len() as u16).to_be_bytes());
    reply.extend(&node.extra);
    Some(reply)
}

/// The reply to `NAMES_REQ`, or with `dump` to `DUMP_REQ`: the EPMD port, then one line per
/// node, newest registration first, in epmd's exact format (parsed by `net_adm:names/0`).
/// A dump has no file descriptors to show, so it shows connection numbers.
pub(super) fn names(registry: &Registry, epmd_port: u16, dump: bool) -> Vec<u8> {
    let mut nodes: Vec<(&String, &Node)> = registry.nodes.iter().collect();
    nodes.sort_by_key(|(_, node)| std::cmp::Reverse(node.conn));
    let mut reply = u32::from(epmd_port).to_be_bytes().to_vec();
    for (name, node) in nodes {
        let line = if dump {
            format!(
                "active name     <{name}> at port {}, fd = {}\n\0",
                node.port, node.conn
            )
        } else {
            format!("name {name} at port {}\n", node.port)
        };
        reply.extend(line.as_bytes());
    }
    reply
}
