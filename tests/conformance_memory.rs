//! The conformance suite on the in-memory bus (`memory://`).

mod conformance;

use std::sync::Arc;

use async_trait::async_trait;
use kumi::bus::SharedBus;
use kumi::memory::MemoryBus;

struct Memory;

#[async_trait]
impl conformance::BusHarness for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn connect(&self) -> SharedBus {
        Arc::new(MemoryBus::new())
    }

    async fn peer(&self, bus: &SharedBus) -> SharedBus {
        Arc::clone(bus)
    }
}

conformance_suite!(Memory);
