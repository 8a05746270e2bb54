use nursery::Interrupted;

#[derive(Debug)]
struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

#[tokio::main(flavor = "current_thread")]
#[nursery::nursery(timeout = "5s")]
async fn main() -> Result<(), MyError> {
    Ok(())
}
