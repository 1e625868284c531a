//! GUE ports over the fou generic netlink family (`crate::fou`).

use super::Linux;
use crate::host::{FouPort, GuePorts, Result};

impl GuePorts for Linux {
    fn fou_ports(&mut self) -> Result<Vec<FouPort>> {
        crate::fou::ports()
    }

    fn add_gue_port(&mut self, port: u16, ipv6: bool) -> Result<()> {
        crate::fou::add_gue(port, ipv6)
    }

    fn del_fou_port(&mut self, port: u16, ipv6: bool) -> Result<()> {
        crate::fou::del(port, ipv6)
    }
}
