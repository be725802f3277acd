//! HTTP/1.x on the wire: [`request`] turns bytes into request heads, [`query`] decodes targets,
//! [`response`] writes answers, [`refusal`] says what each way of turning a request down sends.
//!
//! Both are pure (no sockets): the connection state machine in [`crate::conn`] feeds them bytes and
//! queues what they write.

pub mod query;
pub mod refusal;
pub mod request;
pub mod response;
