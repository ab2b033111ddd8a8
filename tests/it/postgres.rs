//! PostgreSQL as the metadata database. The behaviour of every endpoint on it is what the
//! whole suite checks when CI runs it with `BONDED_TEST_DATABASE=postgres`; here, what
//! that pass cannot see: the two schemas, written separately, must not drift apart, and
//! the offline commands must find the server's database and never print its password.

use crate::common::{self, pg};
use std::collections::BTreeSet;

async fn rows(url: &str, sql: &'static str) -> BTreeSet<(String, String)> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
    pool.close().await;
    rows.into_iter()
        .map(|r| {
            use sqlx::Row;
            (r.get::<String, _>(0), r.get::<String, _>(1))
        })
        .collect()
}

#[tokio::test]
async fn the_postgres_schema_has_every_table_column_and_index_of_the_sqlite_one() {
    let Some(cluster) = pg::cluster_or_skip("postgres schema") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let sqlite = tmp.path().join("bonded.db");
    bonded::db::Metadata::open_sqlite(&sqlite)
        .await
        .unwrap()
        .close()
        .await;
    cluster.create_database("schema_check");
    let url = cluster.url("schema_check");
    bonded::db::Metadata::open_postgres(&url, 2)
        .await
        .unwrap()
        .close()
        .await;

    let sqlite_url = format!("sqlite://{}", sqlite.display());
    let lite_columns = rows(
        &sqlite_url,
        "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite%' AND m.name <> '_sqlx_migrations'",
    )
    .await;
    let pg_columns = rows(
        &url,
        "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT) FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'
           AND table_name <> 'shared_secrets'",
    )
    .await;
    assert!(lite_columns.len() > 60, "{lite_columns:?}");
    assert_eq!(
        lite_columns
            .symmetric_difference(&pg_columns)
            .collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "columns in one schema only"
    );

    let lite_indexes = rows(
        &sqlite_url,
        "SELECT tbl_name, name FROM sqlite_master
         WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%'",
    )
    .await;
    let pg_indexes = rows(
        &url,
        "SELECT CAST(tablename AS TEXT), CAST(indexname AS TEXT) FROM pg_indexes
         WHERE schemaname = 'public' AND indexname NOT LIKE '%_pkey' AND indexname NOT LIKE '%_key'",
    )
    .await;
    assert!(lite_indexes.len() >= 10, "{lite_indexes:?}");
    assert_eq!(
        lite_indexes
            .symmetric_difference(&pg_indexes)
            .collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "indexes in one schema only"
    );
}

#[tokio::test]
async fn offline_commands_use_the_database_url_and_never_print_its_password() {
    let Some(cluster) = pg::cluster_or_skip("postgres offline commands") else {
        return;
    };
    cluster.create_database("offline_cmds");
    // A password in the URL (trust authentication ignores it): it must not be echoed.
    let url = cluster
        .url("offline_cmds")
        .replace("bonded@", "bonded:hunter2-secret@");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cmd = common::Server::own_command(&data, &["--database-url", &url]);
    let s = common::Server::spawn(cmd, &data);
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--database-url", url.as_str()]);
        common::bonded_with_stdin(&all, "")
    };
    // The server made its administrator in PostgreSQL; the command finds it there (and
    // not in the empty data directory).
    let list = common::ok(&run(&["user", "list"]));
    assert!(list.contains("admin on *"), "{list}");
    let verify = run(&["audit", "verify"]);
    assert!(verify.status.success(), "{}", common::output_text(&verify));
    drop(s);

    // A database that is not there: the error names it, without the password.
    let bad = cluster
        .url("no_such_database")
        .replace("bonded@", "bonded:hunter2-secret@");
    let out = common::bonded_with_stdin(&["user", "list", "--database-url", &bad], "");
    assert!(!out.status.success());
    let text = common::output_text(&out);
    assert!(text.contains("no_such_database"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}
