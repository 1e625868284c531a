//! `lvsctl plan`: the desired state per host, from the inventory alone.

use crate::cli::{Output, PlanArgs};
use crate::plan::{self, Context};

pub fn run(args: &PlanArgs) -> anyhow::Result<u8> {
    let lab = super::load_inventory(&args.inventory)?;
    super::check_host_filter(&lab, &args.hosts)?;
    let templates = super::load_templates(args.templates.as_deref())?;
    let ctx = Context { agent_path: super::agent_path_for_display(None), templates: &templates };
    let mut plans = plan::plan(&lab, &ctx)?;
    plans.retain(|p| args.hosts.is_empty() || args.hosts.contains(&p.host));
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&plans)?),
        Output::Text => print!("{}", plan::display::render_text(&lab, &plans)),
    }
    Ok(crate::exit::OK)
}
