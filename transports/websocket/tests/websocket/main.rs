//! kumi-websocket against real sockets: each test starts its own server on a free port.

mod fan_out;
mod lifecycle;
mod limits;
mod round_trip;
mod support;
