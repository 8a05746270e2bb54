use nursery::Interrupted;

#[derive(Debug)]
struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

#[nursery::test]
#[nursery::nursery(timeout = "5s")]
async fn crawls() -> Result<(), MyError> {
    Ok(())
}

fn main() {}
