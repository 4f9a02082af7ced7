//! What Tango itself says about a device: whether its Tango database has it exported, whether it answers a ping,
//! and its state. The operator asks this about the devices a DeviceServer depends on that no DeviceServer of the
//! namespace declares, and about a Running DeviceServer's own devices. rstango's client, bounded in time.

use std::time::Duration;

use tango::database::DatabaseProxy;
use tango::dev::DevProxy;

/// The Tango state of a device that answered, as Tango names it (`ON`, `RUNNING`, `FAULT`, ...).
pub type DeviceState = String;

/// Asks the Tango database at `database` (`host:port`) for `device`, then pings the device and reads its state,
/// each call within `timeout`. The error says, in a few words, where it stopped.
pub async fn ask(database: &str, device: &str, timeout: Duration) -> Result<DeviceState, String> {
    let (host, port) = database
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
        .ok_or_else(|| format!("{database:?} is not a Tango database address (host:port)"))?;
    let mut proxy = DevProxy::new_from_database(&DatabaseProxy::new(host, port), device);
    proxy.set_timeout(timeout);
    let asked = async {
        proxy.ping_async().await?;
        proxy.state_async().await
    };
    // The proxy's timeout bounds each call; this bounds the connection attempts around them too.
    match tokio::time::timeout(timeout * 3, asked).await {
        Err(_) => Err(format!("no answer within {} s", (timeout * 3).as_secs())),
        Ok(Err(error)) => Err(match error.reason() {
            "API_DeviceNotExported" => "not exported (its server does not run)".to_owned(),
            "API_DeviceNotDefined" | "DB_DeviceNotDefined" => "not defined in the Tango database".to_owned(),
            reason if error.description().is_empty() => reason.to_owned(),
            reason => format!("{reason}: {}", error.description().replace('\n', "; ")),
        }),
        Ok(Ok(state)) => Ok(format!("{state:?}").to_uppercase()),
    }
}
