//! A bounded fuzz run of the inventory reader and validator (stable Rust, no extra toolchain):
//! the example inventories, mutated at random (bytes flipped, lines dropped or repeated, values
//! swapped for hostile ones), must never panic; every rejection must be located (file, line,
//! column); every acceptance must plan and render. LVSCTL_FUZZ_SECONDS bounds the run (default
//! 20); LVSCTL_FUZZ_SEED replays one (the seed of a failure is printed).

use std::path::Path;
use std::time::{Duration, Instant};

use lvsctl::plan::{self, Context};
use lvsctl::render::render_host;
use lvsctl::templates::Templates;

/// xorshift64*: reproducible from its seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values and fragments that broke, or could break, a reader like this one.
const HOSTILE: &[&str] = &[
    "0x",
    "0o",
    "0b",
    "99999999999999999999999999999999999999",
    "-1",
    "+0",
    "1e999",
    "nan",
    "inf",
    "\"\"",
    "\"0.0.0.0\"",
    "\"255.255.255.255\"",
    "\"127.0.0.1\"",
    "\"224.0.0.1\"",
    "\"010.250.0.6\"",
    "\"10.1\"",
    "\"1.2.3.4/0\"",
    "\"1.2.3.4/33\"",
    "\"::1\"",
    "\"a\\u001b[31m\"",
    "\"line\\nbreak\"",
    "\"-oProxyCommand=x\"",
    "\"local\"",
    "[]",
    "{}",
    "[[]]",
    "{ a = 1 }",
    "true",
    "\"rr\"",
    "\"nat\"",
    "\"tun\"",
    "\"dr\"",
    "\"director\"",
    "\"real-server\"",
    "\"eth0:1\"",
    "\"a/b\"",
    "\"ééééééééééééééééé\"",
    "\"web1\"",
    "\"lvs\"",
    "65536",
    "0",
    "2147483648",
    "2678401",
];

const FRAGMENTS: &[&str] = &[
    "[hosts.x]\n",
    "[[services]]\n",
    "[lab]\n",
    "[ssh]\n",
    "role = \"director\"\n",
    "vip = \"192.168.188.100\"\n",
    "port = 80\n",
    "real_servers = [{ host = \"nope\" }]\n",
    "gateway = \"192.168.188.0\"\n",
    "segments = { s = [\"lvs:eth0\"] }\n",
    "become = \"sudo\"\n",
    "interfaces = { eth0 = [\"10.0.0.1/8\"] }\n",
    "a.b.c = 1\n",
    "=\n",
    "[\n",
    "\"\n",
];

fn mutate(rng: &mut Rng, src: &str) -> String {
    let mut lines: Vec<String> = src.lines().map(str::to_string).collect();
    for _ in 0..1 + rng.below(4) {
        let n = lines.len().max(1);
        match rng.below(6) {
            0 if !lines.is_empty() => {
                lines.remove(rng.below(n));
            }
            1 if !lines.is_empty() => {
                let l = lines[rng.below(n)].clone();
                lines.insert(rng.below(n), l);
            }
            2 => {
                // A value replaced by a hostile one.
                let i = rng.below(n);
                if let Some(l) = lines.get_mut(i)
                    && let Some((k, _)) = l.split_once(" = ")
                {
                    *l = format!("{k} = {}", HOSTILE[rng.below(HOSTILE.len())]);
                }
            }
            3 => {
                let at = rng.below(n + 1).min(lines.len());
                lines.insert(at, FRAGMENTS[rng.below(FRAGMENTS.len())].trim_end().to_string());
            }
            4 if !lines.is_empty() => {
                // A byte flipped (kept valid UTF-8: the reader gets text).
                let i = rng.below(n);
                let mut b = lines[i].clone().into_bytes();
                if !b.is_empty() {
                    let j = rng.below(b.len());
                    b[j] = b" =[]{}\",.0123456789abcxyz-_#/:\\"[rng.below(31)];
                }
                lines[i] = String::from_utf8_lossy(&b).into_owned();
            }
            _ if !lines.is_empty() => {
                let last = lines.len() - 1;
                let (a, b) = (rng.below(n).min(last), rng.below(n).min(last));
                lines.swap(a, b);
            }
            _ => {}
        }
    }
    lines.join("\n") + "\n"
}

fn check_one(path: &Path, text: &str, templates: &Templates) -> Result<bool, String> {
    match lvsctl::inventory::parse_str(path, text) {
        Err(d) => {
            if d.is_empty() {
                return Err("rejected without a single diagnostic".into());
            }
            for x in &d.0 {
                if x.line == 0 || x.column == 0 || x.file != path {
                    return Err(format!("a diagnostic without its place: {x}"));
                }
            }
            Ok(false)
        }
        Ok(lab) => {
            let ctx = Context { agent_path: "/usr/local/lib/lvsctl/F/lvsctl".into(), templates };
            let plans = plan::plan(&lab, &ctx).map_err(|e| format!("accepted but does not plan: {e}"))?;
            for p in &plans {
                render_host(p, &ctx).map_err(|e| format!("accepted but {} does not render: {e}", p.host))?;
            }
            Ok(true)
        }
    }
}

#[test]
fn mutated_inventories_never_panic_and_are_located_or_render() {
    let seconds: u64 = std::env::var("LVSCTL_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let fixed: Option<u64> = std::env::var("LVSCTL_FUZZ_SEED").ok().and_then(|s| s.parse().ok());
    let examples: Vec<(String, String)> = ["dr", "nat", "tun", "dr-multisubnet"]
        .iter()
        .map(|n| (n.to_string(), std::fs::read_to_string(format!("inventories/{n}.toml")).unwrap()))
        .collect();
    let templates = Templates::embedded();
    let path = Path::new("fuzz.toml");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut runs, mut accepted) = (0u64, 0u64);
    let mut seed = fixed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    loop {
        let mut rng = Rng(seed);
        let (name, src) = &examples[rng.below(examples.len())];
        let text = mutate(&mut rng, src);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_one(path, &text, &templates)));
        match outcome {
            Ok(Ok(ok)) => accepted += ok as u64,
            Ok(Err(why)) => panic!("seed {seed} (from {name}): {why}\n--- input\n{text}"),
            Err(_) => panic!("seed {seed} (from {name}): the reader panicked\n--- input\n{text}"),
        }
        runs += 1;
        if fixed.is_some() || Instant::now() >= deadline {
            break;
        }
        seed = Rng(seed).next() | 1;
    }
    eprintln!("fuzz: {runs} mutated inventories, {accepted} accepted (planned and rendered), the rest located");
    assert!(fixed.is_some() || runs > 100, "too few runs to mean anything: {runs}");
}
