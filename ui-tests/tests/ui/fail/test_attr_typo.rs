#[nursery::test(flavour = "multi_thread", leak_grace = "1 s")]
async fn crawls() {}

fn main() {}
