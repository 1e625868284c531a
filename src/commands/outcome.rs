//! What running the agent on one host came to: its report or why there is none, how long it
//! took, and every change it reported. The fleet makes outcomes, the printer and the contract's
//! bodies show them.

use crate::agent::protocol::{ChangeEvent, Report};
use crate::remote::HostError;

#[derive(Debug)]
pub struct Outcome {
    pub host: String,
    pub result: Result<Report, HostError>,
    pub seconds: f64,
    /// Every change event the host reported, in order.
    pub events: Vec<ChangeEvent>,
}
