//! `daos`: the user tool for containers and objects of a pool. See `daos --help`.
//!
//! It finds the pool through the management service named in `daos_control.yml` (`-o`, or
//! `-l host:port`), then talks to the pool's targets over the fabric.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use daos_client::container::{AclOp, ContInfo, Containers};
use daos_client::props::ContProps;
use daos_client::{ClientError, Session, SessionOpts, kv, uuid_text};
use daos_control::VERSION;
use daos_control::exit::{CmdError, ExitCode, report};
use daos_control::{self as dmg};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(name = "daos", version = VERSION, about = "DAOS user tool: containers and objects of a pool")]
struct Cli {
    #[command(flatten)]
    flags: daos_control::cli::ClientFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Containers of a pool.
    #[command(subcommand, visible_alias = "cont")]
    Container(ContCmd),
    /// Objects of a container, by key.
    #[command(subcommand, visible_alias = "obj")]
    Object(ObjCmd),
}

#[derive(Subcommand)]
enum ContCmd {
    /// Create a container.
    Create {
        pool: String,
        label: String,
        /// Properties: rd_fac:N (0-4 failures survived), rd_lvl:rank|node.
        #[arg(long = "properties")]
        properties: Option<String>,
        /// Default object class of its objects (must survive rd_fac failures); default from
        /// rd_fac (RP_<rd_fac+1>G1, or one copy with rd_fac 0).
        #[arg(long)]
        oclass: Option<String>,
        /// File of ACL entries, one per line (default: A::OWNER@:rwdtTaAo, A:G:GROUP@:rwtT).
        #[arg(long = "acl-file")]
        acl_file: Option<PathBuf>,
        /// Owner user (default: the caller).
        #[arg(long)]
        user: Option<String>,
        /// Owner group (default: the caller's group).
        #[arg(long)]
        group: Option<String>,
    },
    /// Show a container's ACL.
    GetAcl {
        pool: String,
        container: String,
        /// Describe each entry.
        #[arg(long)]
        verbose: bool,
        /// Write the ACL to this file too.
        #[arg(long)]
        outfile: Option<PathBuf>,
    },
    /// Replace a container's ACL with the entries of a file.
    OverwriteAcl {
        pool: String,
        container: String,
        #[arg(long = "acl-file")]
        acl_file: PathBuf,
    },
    /// Add entries to a container's ACL (or change those of their principals).
    UpdateAcl {
        pool: String,
        container: String,
        #[arg(long = "acl-file")]
        acl_file: Option<PathBuf>,
        /// One entry, e.g. A::bob@:r.
        #[arg(long)]
        entry: Option<String>,
    },
    /// Remove a principal's entry from a container's ACL.
    DeleteAcl {
        pool: String,
        container: String,
        /// OWNER@, GROUP@, EVERYONE@, u:name@ or g:name@.
        #[arg(long)]
        principal: String,
    },
    /// Change a container's owner user and/or group.
    SetOwner {
        pool: String,
        container: String,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        group: Option<String>,
    },
    /// A container's properties.
    GetProp { pool: String, container: String },
    /// List the pool's containers.
    #[command(visible_alias = "ls")]
    List { pool: String },
    /// A container's UUID and label.
    Query { pool: String, container: String },
    /// Destroy a container and its objects.
    Destroy {
        pool: String,
        container: String,
        /// Destroy it even while it is open (its handles are evicted).
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum ObjCmd {
    /// Store a file under a key (replacing what the key held).
    Put {
        pool: String,
        container: String,
        key: String,
        file: PathBuf,
        /// Object class, e.g. RP_3G1 (three replicas on distinct nodes); default S1.
        #[arg(long)]
        oclass: Option<String>,
    },
    /// Write what a key holds to a file.
    Get {
        pool: String,
        container: String,
        key: String,
        file: PathBuf,
        /// The object class the key was stored with.
        #[arg(long)]
        oclass: Option<String>,
    },
    /// Keys of a container, with their sizes.
    #[command(visible_alias = "ls")]
    List { pool: String, container: String },
}

fn new_uuid() -> Result<[u8; 16], String> {
    daos_wire::new_uuid().map_err(|e| format!("cannot make a UUID: {e}"))
}

/// `--oclass NAME` checked: a DAOS class name this build stores.
fn object_class(name: &Option<String>) -> Result<Option<daos_placement::ObjectClass>, String> {
    let Some(name) = name else { return Ok(None) };
    let class = daos_placement::ObjectClass::parse(name).map_err(|e| format!("--oclass: {e}"))?;
    class.check(0).map_err(|e| format!("--oclass: {e}"))?;
    Ok(Some(class))
}

fn err(e: ClientError) -> String {
    e.to_string()
}

fn container_props(info: &ContInfo) -> Result<ContProps, String> {
    ContProps::decode(&info.props).map_err(|e| format!("container {}: {e}", info.label))
}

/// Opens container `id` at its pool service: its UUID and the class its objects open with
/// (`--oclass` or the container's default, checked against its `rd_fac`).
/// Opens container `id` at its pool service: its UUID, the class its objects open with
/// (`--oclass` or the container's default, checked against its `rd_fac`) and the fault-domain
/// level their shards are spread at (its `rd_lvl`).
fn open_container(
    s: &mut Session,
    c: &Containers,
    id: &str,
    oclass: &Option<String>,
    flags: u32,
) -> Result<OpenContainer, String> {
    let requested = object_class(oclass)?;
    let info = c.query(id).map_err(|e| e.to_string())?;
    // Under a pool handle, a container handle (DAOS's container open).
    let pool_handle = s.map().handle;
    if pool_handle != 0 {
        let h = c
            .open(pool_handle, &daos_client::uuid_text(&info.uuid), flags)
            .map_err(|e| e.to_string())?;
        s.set_cont_handle(info.uuid, h.cookie);
    }
    let props = container_props(&info)?;
    let class = props
        .class_for(requested)
        .map_err(|e| format!("container {id}: {e}"))?;
    Ok((info.uuid, class, props.rd_lvl))
}

/// A container's objects over the targets that answer: targets of ranks down (or not
/// answering) are named on stderr, not a failure, since replicated objects are listed from
/// their other replicas.
fn listed_objects(s: &mut Session, cont: [u8; 16]) -> Result<Vec<daos_client::Oid>, String> {
    let list = s.list_objects_partial(cont).map_err(err)?;
    if !list.unlisted.is_empty() {
        eprintln!(
            "daos: note: ranks {:?} are down or did not answer; objects are listed from their other replicas (an object with a copy only there is not listed)",
            list.unlisted_ranks()
        );
    }
    Ok(list.oids)
}

/// An open container: UUID, object class, `rd_lvl`.
type OpenContainer = (
    [u8; 16],
    Option<daos_placement::ObjectClass>,
    daos_placement::RdLvl,
);

/// A container's ACL as DAOS prints it (and, with `outfile`, written there too).
fn acl_out(
    i: ContInfo,
    verbose: bool,
    outfile: Option<&std::path::Path>,
) -> Result<(String, Value), String> {
    let entries = if i.acl.is_empty() && !i.owner.is_empty() {
        daos_auth::Acl::default_container().strings()
    } else {
        i.acl.clone()
    };
    let text = daos_auth::acl::format(&entries, &i.owner, &i.group, verbose);
    if let Some(f) = outfile {
        std::fs::write(f, &text).map_err(|e| format!("cannot write {}: {e}", f.display()))?;
    }
    Ok((
        text,
        json!({"entries": entries, "owner_user": i.owner, "owner_group": i.group}),
    ))
}

fn cont_command(
    s: &mut Session,
    c: &Containers,
    pool: &str,
    cmd: &ContCmd,
) -> Result<(String, Value), String> {
    match cmd {
        ContCmd::Create {
            label,
            properties,
            oclass,
            acl_file,
            user,
            group,
            ..
        } => {
            daos_control::input::check_label_of("container", label)?;
            // Checked before anything is created.
            let props = ContProps::from_cli(properties.as_deref(), oclass.as_deref())?;
            let acl = match acl_file {
                Some(f) => daos_auth::acl::read_file(f)?,
                None => Vec::new(),
            };
            let uuid = c
                .create_with_acl(
                    label,
                    new_uuid()?,
                    &props.encode(),
                    acl,
                    user.as_deref().unwrap_or(""),
                    group.as_deref().unwrap_or(""),
                )
                .map_err(|e| e.to_string())?
                .uuid;
            let skipped = s.register_everywhere(uuid).map_err(err)?;
            if !skipped.is_empty() {
                eprintln!(
                    "daos: note: {} target(s) did not answer (ranks {:?}); they learn the container when they are rebuilt",
                    skipped.len(),
                    {
                        let mut r: Vec<u32> = skipped.iter().map(|(r, _)| *r).collect();
                        r.dedup();
                        r
                    }
                );
            }
            let u = uuid_text(&uuid);
            Ok((
                format!(
                    "Successfully created container {u}\n  Container UUID : {u}\n  Container Label: {label}\n"
                ),
                json!({"container_uuid": u, "container_label": label, "pool": pool}),
            ))
        }
        ContCmd::List { .. } => {
            let list = c.list().map_err(|e| e.to_string())?;
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|i| vec![uuid_text(&i.uuid), i.label.clone()])
                .collect();
            let text = if rows.is_empty() {
                format!("No containers in pool {pool}\n")
            } else {
                daos_control::table::render(&["UUID", "Label"], &rows, "")
            };
            let j: Vec<Value> = list
                .iter()
                .map(|i| json!({"uuid": uuid_text(&i.uuid), "label": i.label}))
                .collect();
            Ok((text, json!(j)))
        }
        ContCmd::Query { container, .. } => {
            let i = c.query(container).map_err(|e| e.to_string())?;
            // Counting its objects reads the container: under a container handle.
            let pool_handle = s.map().handle;
            if pool_handle != 0 {
                let h = c
                    .open(
                        pool_handle,
                        &uuid_text(&i.uuid),
                        daos_client::container::FLAG_RO,
                    )
                    .map_err(|e| e.to_string())?;
                s.set_cont_handle(i.uuid, h.cookie);
            }
            let (l, u) = (i.label, i.uuid);
            let objects = listed_objects(s, u)?.len();
            let u = uuid_text(&u);
            Ok((
                format!(
                    "  Container UUID : {u}\n  Container Label: {l}\n  Pool           : {pool}\n  Objects        : {objects}\n"
                ),
                json!({"container_uuid": u, "container_label": l, "pool": pool, "objects": objects}),
            ))
        }
        ContCmd::GetProp { container, .. } => {
            let props = container_props(&c.query(container).map_err(|e| e.to_string())?)?;
            let rows = props.rows();
            let j: Vec<Value> = rows
                .iter()
                .map(|r| json!({"name": r[0], "value": r[1]}))
                .collect();
            Ok((
                format!(
                    "Properties for container {container}\n{}",
                    daos_control::table::render(&["Name", "Value"], &rows, "")
                ),
                json!(j),
            ))
        }
        ContCmd::GetAcl {
            container,
            verbose,
            outfile,
            ..
        } => acl_out(
            c.acl(container, AclOp::Get).map_err(|e| e.to_string())?,
            *verbose,
            outfile.as_deref(),
        ),
        ContCmd::OverwriteAcl {
            container,
            acl_file,
            ..
        } => {
            let e = daos_auth::acl::read_file(acl_file)?;
            acl_out(
                c.acl(container, AclOp::Overwrite(e))
                    .map_err(|e| e.to_string())?,
                false,
                None,
            )
        }
        ContCmd::UpdateAcl {
            container,
            acl_file,
            entry,
            ..
        } => {
            let e = match (acl_file, entry) {
                (Some(f), None) => daos_auth::acl::read_file(f)?,
                (None, Some(e)) => vec![e.clone()],
                _ => return Err("give either --acl-file or --entry".into()),
            };
            acl_out(
                c.acl(container, AclOp::Update(e))
                    .map_err(|e| e.to_string())?,
                false,
                None,
            )
        }
        ContCmd::DeleteAcl {
            container,
            principal,
            ..
        } => acl_out(
            c.acl(container, AclOp::Delete(principal.clone()))
                .map_err(|e| e.to_string())?,
            false,
            None,
        ),
        ContCmd::SetOwner {
            container,
            user,
            group,
            ..
        } => {
            let i = c
                .acl(
                    container,
                    AclOp::SetOwner {
                        user: user.clone().unwrap_or_default(),
                        group: group.clone().unwrap_or_default(),
                    },
                )
                .map_err(|e| e.to_string())?;
            Ok((
                format!("Successfully set owner of container {container}\n"),
                json!({"owner_user": i.owner, "owner_group": i.group}),
            ))
        }
        ContCmd::Destroy {
            container, force, ..
        } => {
            let uuid = c
                .destroy(container, *force)
                .map_err(|e| e.to_string())?
                .uuid;
            s.punch_everywhere(uuid).map_err(err)?;
            let u = uuid_text(&uuid);
            Ok((
                format!("Successfully destroyed container {container} ({u})\n"),
                json!({"container_uuid": u}),
            ))
        }
    }
}

fn obj_command(s: &mut Session, c: &Containers, cmd: &ObjCmd) -> Result<(String, Value), String> {
    match cmd {
        ObjCmd::Put {
            container,
            key,
            file,
            oclass,
            ..
        } => {
            let (cont, class, lvl) =
                open_container(s, c, container, oclass, daos_client::container::FLAG_RW)?;
            let data =
                std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            kv::put_at(s, cont, key, class, lvl, &data, new_uuid()?)
                .map_err(|e| format!("{e}; the previous value of {key:?} is unchanged"))?;
            Ok((
                format!(
                    "Stored {} bytes from {} as {key:?}\n",
                    data.len(),
                    file.display()
                ),
                json!({"key": key, "bytes": data.len()}),
            ))
        }
        ObjCmd::Get {
            container,
            key,
            file,
            oclass,
            ..
        } => {
            let (cont, class, lvl) =
                open_container(s, c, container, oclass, daos_client::container::FLAG_RO)?;
            let out = match kv::get_at(s, cont, key, class, lvl) {
                Ok(Some(v)) => v,
                Ok(None) => {
                    return Err(format!(
                        "no key {key:?} in container {container}; `daos object list` shows the keys"
                    ));
                }
                Err(e) => return Err(err(e)),
            };
            std::fs::write(file, &out)
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            Ok((
                format!(
                    "Wrote {} bytes of {key:?} to {}\n",
                    out.len(),
                    file.display()
                ),
                json!({"key": key, "bytes": out.len()}),
            ))
        }
        ObjCmd::List { container, .. } => {
            let (cont, _, _) =
                open_container(s, c, container, &None, daos_client::container::FLAG_RO)?;
            let mut rows = Vec::new();
            for oid in listed_objects(s, cont)? {
                if let Some(row) = kv::describe(s, cont, oid).map_err(err)? {
                    rows.push(row);
                }
            }
            rows.sort();
            let text = if rows.is_empty() {
                format!("No keys in container {container}\n")
            } else {
                let t: Vec<Vec<String>> = rows
                    .iter()
                    .map(|(k, z)| vec![k.clone(), z.to_string()])
                    .collect();
                daos_control::table::render(&["Key", "Bytes"], &t, "")
            };
            let j: Vec<Value> = rows
                .iter()
                .map(|(k, z)| json!({"key": k, "bytes": z}))
                .collect();
            Ok((text, json!(j)))
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, CmdError> {
    let target = daos_client::connect::client_target(
        cli.flags.config_path.as_deref(),
        cli.flags.host_list.as_deref(),
        cli.flags.insecure,
    )?;
    let pool = match &cli.command {
        Command::Container(
            ContCmd::Create { pool, .. }
            | ContCmd::GetProp { pool, .. }
            | ContCmd::List { pool }
            | ContCmd::Query { pool, .. }
            | ContCmd::Destroy { pool, .. }
            | ContCmd::GetAcl { pool, .. }
            | ContCmd::OverwriteAcl { pool, .. }
            | ContCmd::UpdateAcl { pool, .. }
            | ContCmd::DeleteAcl { pool, .. }
            | ContCmd::SetOwner { pool, .. },
        )
        | Command::Object(
            ObjCmd::Put { pool, .. } | ObjCmd::Get { pool, .. } | ObjCmd::List { pool, .. },
        ) => pool.clone(),
    };
    // Reads connect read-only (a principal the pool's ACL lets only read can use them).
    use daos_client::container::{FLAG_RO, FLAG_RW};
    let flags = match &cli.command {
        Command::Container(
            ContCmd::GetProp { .. }
            | ContCmd::List { .. }
            | ContCmd::Query { .. }
            | ContCmd::GetAcl { .. },
        )
        | Command::Object(ObjCmd::Get { .. } | ObjCmd::List { .. }) => FLAG_RO,
        _ => FLAG_RW,
    };
    let result = daos_client::connect::connect_blocking(&target, &pool, flags)
        .map_err(|e| e.to_string())
        .and_then(|map| {
            let mut s = Session::open(Arc::new(map), SessionOpts::default())
                .map_err(err)?
                .with_refresher(daos_client::connect::refresher(&target, &pool));
            let mut c = Containers::new(&target, &pool).map_err(|e| e.to_string())?;
            // The pool handle stands for the caller in the containers' ACL checks.
            let handle = s.map().handle;
            c.set_handle(handle);
            let out = match &cli.command {
                Command::Container(cmd) => cont_command(&mut s, &c, &pool, cmd),
                Command::Object(o) => obj_command(&mut s, &c, o),
            };
            // The pool handle is closed on the way out (the agent would evict it otherwise).
            if let Err(e) = daos_client::connect::disconnect_blocking(&target, &pool, handle) {
                eprintln!("daos: note: closing the pool connection: {e}");
            }
            out
        });
    let out = match result {
        Ok((text, json)) => dmg::Output {
            text,
            json,
            ok: true,
            error: None,
        },
        Err(e) => dmg::Output {
            text: String::new(),
            json: Value::Null,
            ok: false,
            error: Some(e),
        },
    };
    Ok(dmg::print(out, cli.flags.json))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code.into(),
        Err(e) => report(&e).into(),
    }
}
