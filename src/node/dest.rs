//! Where a message goes ([`Dest`]) and what a message is ([`IntoMessage`]): what the
//! node routes.

use crate::term::{tuple, Atom, Match, Pid, Reference, Term};

/// Where a message goes: what `send/2` accepts on the BEAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// A process, local or remote.
    Pid(Pid),
    /// A name registered on this node.
    Name(Atom),
    /// `{Name, Node}`: a name registered on a node (this one or another).
    RemoteName(Atom, Atom),
    /// A process alias (OTP 24+).
    Alias(Reference),
    /// `{:global, Name}`: the process registered under `Name` in `global`, as
    /// `GenServer.call/3` and `GenServer.cast/2` take it (`send/2` does not: build it
    /// with [`Dest::global`], not from a `{:global, name}` term).
    Global(Term),
}

impl From<Pid> for Dest {
    fn from(p: Pid) -> Self {
        Dest::Pid(p)
    }
}
impl From<&Pid> for Dest {
    fn from(p: &Pid) -> Self {
        Dest::Pid(*p)
    }
}
impl From<&str> for Dest {
    fn from(name: &str) -> Self {
        Dest::Name(Atom::from(name))
    }
}
impl From<String> for Dest {
    fn from(name: String) -> Self {
        Dest::Name(Atom::from(name))
    }
}
impl From<&String> for Dest {
    fn from(name: &String) -> Self {
        Dest::Name(Atom::from(name))
    }
}
impl From<Atom> for Dest {
    fn from(name: Atom) -> Self {
        Dest::Name(name)
    }
}
/// `{Name, Node}`, each a `&str`, a `String` or an [`Atom`].
impl<N: Into<Atom>, M: Into<Atom>> From<(N, M)> for Dest {
    fn from((name, node): (N, M)) -> Self {
        Dest::RemoteName(name.into(), node.into())
    }
}

/// A destination as `send/2` takes it: a pid, an atom, `{Name, Node}` of two atoms, or
/// a reference (an alias); anything else is `Err` (where `send/2` raises `badarg`).
/// As for `send/2`, `{:global, :x}` is the name `global` on a node `x`: a GenServer's
/// name is read with [`Dest::server`].
impl TryFrom<&Term> for Dest {
    type Error = ();

    fn try_from(term: &Term) -> Result<Self, ()> {
        match term {
            Term::Pid(p) => Ok(Dest::Pid(*p)),
            Term::Atom(a) => Ok(Dest::Name(*a)),
            Term::Reference(r) => Ok(Dest::Alias((**r).clone())),
            Term::Tuple(t) => match t.elements.as_slice() {
                [Term::Atom(name), Term::Atom(node)] => Ok(Dest::RemoteName(*name, *node)),
                _ => Err(()),
            },
            _ => Err(()),
        }
    }
}
impl From<Reference> for Dest {
    fn from(r: Reference) -> Self {
        Dest::Alias(r)
    }
}

impl Dest {
    /// The destination as a term, as `send/2` takes it: a pid, a name, `{Name, Node}`,
    /// an alias.
    pub(crate) fn to_term(&self) -> Term {
        match self {
            Dest::Pid(p) => Term::Pid(*p),
            Dest::Name(n) => Term::Atom(*n),
            Dest::RemoteName(n, node) => tuple(vec![Term::Atom(*n), Term::Atom(*node)]),
            Dest::Alias(r) => Term::Reference(Box::new(r.clone())),
            Dest::Global(n) => tuple(vec![Term::Atom(Atom::from("global")), n.clone()]),
        }
    }

    /// `{:global, name}`: the process registered under `name` in `global`
    /// ([`Node::register_global`](crate::Node::register_global), `:global.register_name/2`
    /// on any node), found when the message is sent or the call made.
    pub fn global(name: impl Into<Term>) -> Dest {
        Dest::Global(name.into())
    }

    /// A GenServer's name as `GenServer.call/3` takes it: what `send/2` takes (a pid, an
    /// atom, `{Name, Node}`, an alias), `{:global, Name}` and `{:via, :global, Name}`;
    /// `None` for anything else (another `:via` module is BEAM code).
    pub fn server(name: &Term) -> Option<Dest> {
        match name.as_tuple() {
            Some([tag, n]) if tag.is_atom("global") => Some(Dest::Global(n.clone())),
            Some([via, module, n]) if via.is_atom("via") && module.is_atom("global") => {
                Some(Dest::Global(n.clone()))
            }
            _ => Dest::try_from(name).ok(),
        }
    }

    /// The term a `DOWN` message names the monitored process by: the pid, or
    /// `{Name, Node}` for a monitor by name.
    pub(crate) fn down_object(&self, local_node: &Atom) -> Term {
        match self {
            Dest::Name(n) => tuple(vec![Term::Atom(*n), Term::Atom(*local_node)]),
            _ => self.to_term(),
        }
    }
}

/// A message to send: a [`Term`] given away, or a `&Term` lent. Either is written to the
/// connection straight from the sender's term, so a process that sends the same term
/// again and again (a request, a broadcast) lends it instead of cloning it each time; a
/// process on this node gets its own copy of a lent term, as every process on the BEAM
/// gets its own copy of a message. A binary of 64 KiB or more that a term given away
/// ends with (as `{:big, i, <<...>>}` does) goes to a remote node from its own buffer,
/// never copied; a lent term is copied into the connection's queue as it is encoded. A
/// call's request is written as lent either way: the call keeps it for the error it
/// may return.
///
/// ```no_run
/// # async fn example(p: &mut cnode::Process) -> Result<(), cnode::CallError> {
/// use cnode::term::{int, list};
/// let numbers = list((1..=200).map(int).collect());
/// for _ in 0..1000 {
///     p.call(("echo", "moebi@localhost"), &numbers, None).await?;
/// }
/// p.send(("echo", "moebi@localhost"), numbers); // given away: no copy at all
/// # Ok(())
/// # }
/// ```
pub trait IntoMessage: sealed::Message {}

impl IntoMessage for Term {}
impl IntoMessage for &Term {}

/// What the node needs of an [`IntoMessage`] (sealed: only `Term` and `&Term` are
/// messages).
mod sealed {
    use crate::term::Term;

    pub trait Message {
        /// The term, to write.
        fn as_term(&self) -> &Term;
        /// The term, to deliver to a process here (a lent one is cloned).
        fn into_term(self) -> Term;
        /// Done with after writing: a term given away is dropped.
        fn spent(self);
        /// The bytes of a large binary that ends the term as written, taken out of a
        /// term given away (left empty there) so that they are written from where
        /// they are, not copied; nothing of a lent term.
        fn take_tail(&mut self) -> Vec<u8>;
        /// The term kept by who sends it: a term given away, owned; a lent one,
        /// borrowed (a call keeps its request for the error it may end with).
        fn into_kept<'a>(self) -> std::borrow::Cow<'a, Term>
        where
            Self: 'a;
    }

    impl Message for Term {
        fn as_term(&self) -> &Term {
            self
        }
        fn into_term(self) -> Term {
            self
        }
        fn spent(self) {
            crate::term::discard(self)
        }
        fn take_tail(&mut self) -> Vec<u8> {
            crate::connection::large_tail(self)
        }
        fn into_kept<'a>(self) -> std::borrow::Cow<'a, Term> {
            std::borrow::Cow::Owned(self)
        }
    }

    impl Message for &Term {
        fn as_term(&self) -> &Term {
            self
        }
        fn into_term(self) -> Term {
            self.clone()
        }
        fn spent(self) {}
        fn take_tail(&mut self) -> Vec<u8> {
            Vec::new()
        }
        fn into_kept<'a>(self) -> std::borrow::Cow<'a, Term>
        where
            Self: 'a,
        {
            std::borrow::Cow::Borrowed(self)
        }
    }
}
