use drive_flow::prelude::*;

#[event]
async fn count() -> usize {
    3
}

#[listen(count)]
async fn report(input: EventInput) -> String {
    let text: &String = input.get(count).unwrap();
    text.clone()
}

fn main() {}
