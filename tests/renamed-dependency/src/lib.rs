//! Events written in a crate that names drive-flow `workflows`: each event says where the
//! runtime is with `crate = "workflows"`.

use workflows::prelude::*;

/// The start: a number.
#[event(crate = "workflows")]
pub async fn seed() -> u32 {
    20
}

/// Two groups and options on a renamed crate: `crate` is given once, on any attribute.
#[listen(seed, crate = "workflows", retries = 1)]
pub async fn double(input: EventInput) -> u32 {
    input.get(seed).copied().unwrap_or(0) * 2
}

/// A join of both, ending the run.
#[listen(seed, double, name = "both", crate = "workflows")]
pub async fn total(input: EventInput) -> Flow<u32> {
    let sum = input.get(seed).copied().unwrap_or(0) + input.get(double).copied().unwrap_or(0);
    Flow::from(sum + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_of_a_renamed_dependency_register_and_run() {
        let drive = Drive::new().unwrap();
        let results = drive.invoke(seed).await.unwrap();
        assert_eq!(results.get(seed), Some(&20));
        assert_eq!(results.get(double), Some(&40));
        assert_eq!(results.get(total), Some(&62));
        assert_eq!(results.count(total), 1);
        assert!(drive.debug_string(total).contains("both"));
    }
}
