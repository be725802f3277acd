//! Tokens: how a readiness event or a timer names what it is about.
//!
//! Every source registered with `mio::Poll` has a [`Token`], and this module is the whole scheme:
//!
//! | token                          | source                                   |
//! |--------------------------------|------------------------------------------|
//! | [`LISTENER`] (`usize::MAX`)    | the listening socket                     |
//! | [`SIGNALS`] (`usize::MAX - 1`) | the signal pipe (SIGINT, SIGTERM)        |
//! | [`BACKPLANE_COMMAND`], [`BACKPLANE_READ`] | the two Redis links (`--redis`) |
//! | [`CLUSTER`] (`usize::MAX - 4`)  | a worker's link to its supervisor (`--workers`) |
//! | anything else                  | a connection: [`ConnKey::token`]         |
//!
//! Rules:
//! - A connection's token carries its slab slot *and* a generation. A slot is reused after a close; the
//!   generation is not, so an event or a timer meant for a connection that closed can never act on the
//!   one that took its slot: the loop compares the key with the slot's owner and drops a stale one.
//! - Connection tokens pack a slot below 2³² into the low bits, so they never reach the fixed tokens at
//!   the top of the range (a slot that high would need 4 billion connections).
//!
//! A leaf: it imports nothing of the crate, so every module may name a connection without a cycle.

use mio::Token;

#[cfg(not(target_pointer_width = "64"))]
compile_error!("tokens pack a slot and a generation into 64 bits");

/// The listener's token.
pub const LISTENER: Token = Token(usize::MAX);
/// The token of the signal pipe (SIGINT, SIGTERM).
pub const SIGNALS: Token = Token(usize::MAX - 1);
/// The token of the backplane's command connection (publishes).
pub const BACKPLANE_COMMAND: Token = Token(usize::MAX - 2);
/// The token of the backplane's reading connection (`XREAD BLOCK`).
pub const BACKPLANE_READ: Token = Token(usize::MAX - 3);
/// The token of a worker's link to its supervisor (see [`crate::cluster`]).
pub const CLUSTER: Token = Token(usize::MAX - 4);
/// The loop's precise alarm (a timerfd armed for the next deadline; see `server::wake`).
pub const WAKE: Token = Token(usize::MAX - 5);

/// Names one connection: its slab slot and the generation of the connection that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnKey {
    pub slot: u32,
    pub generation: u32,
}

impl ConnKey {
    /// The mio token: the generation in the high 32 bits, the slab slot in the low 32.
    pub fn token(self) -> Token {
        Token(((self.generation as usize) << 32) | self.slot as usize)
    }

    /// The key a token was made from.
    pub fn from_token(token: Token) -> ConnKey {
        ConnKey { slot: token.0 as u32, generation: (token.0 >> 32) as u32 }
    }

    /// Whether `token` names a connection (not the listener, the signals or a backplane link).
    pub fn is_connection(token: Token) -> bool {
        token.0 < CLUSTER.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_slot_and_generation() {
        for key in [
            ConnKey { slot: 0, generation: 0 },
            ConnKey { slot: 5, generation: 1 },
            ConnKey { slot: u32::MAX - 1, generation: u32::MAX - 1 },
        ] {
            assert_eq!(ConnKey::from_token(key.token()), key);
            assert!(ConnKey::is_connection(key.token()));
        }
        let a = ConnKey { slot: 5, generation: 1 };
        let b = ConnKey { slot: 5, generation: 2 };
        assert_ne!(a.token(), b.token(), "a reused slot gets a new token");
    }

    #[test]
    fn fixed_tokens_are_not_connections() {
        for token in [LISTENER, SIGNALS, BACKPLANE_COMMAND, BACKPLANE_READ, CLUSTER] {
            assert!(!ConnKey::is_connection(token), "{token:?}");
        }
    }
}
