use kumi::prelude::*;

struct Reports;

#[kumi::service]
impl Reports {
    #[schedule("hourly")]
    async fn report(&self, Data(n): Data<u64>) {
        let _ = n;
    }
}

fn main() {}
