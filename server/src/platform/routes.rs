//! The one route table: every route's method, path and who may call it.
//! The router is built from it and the authorization layer reads it; a
//! route missing from it needs a server admin, so a forgotten entry fails
//! closed. `tests/all/serve.rs` sweeps every route × role.

use super::model::Role;
use http::Method;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone (health, login).
    Open,
    /// Any logged-in user.
    User,
    /// At least this role in the team the path names (`{team}`).
    Team(Role),
    /// At least this role in some team.
    AnyTeam(Role),
    /// A server administrator.
    Admin,
}

/// One route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Its method.
    pub method: Method,
    /// Its path template, as the router has it.
    pub path: &'static str,
    /// Who may call it.
    pub need: Need,
}

const fn route(method: Method, path: &'static str, need: Need) -> Route {
    Route { method, path, need }
}

/// Every route of `firedrill serve`.
pub const ROUTES: &[Route] = &[
    route(Method::GET, "/healthz", Need::Open),
    // Prometheus scrapes with a token (`authorization` in its scrape
    // config): any user, e.g. one made for it with no team.
    route(Method::GET, "/metrics", Need::User),
    route(Method::POST, "/api/v1/login", Need::Open),
    route(Method::POST, "/api/v1/logout", Need::User),
    route(Method::GET, "/api/v1/me", Need::User),
    route(Method::GET, "/api/v1/openapi.json", Need::User),
    route(Method::GET, "/api/v1/users", Need::Admin),
    route(Method::POST, "/api/v1/users", Need::Admin),
    route(Method::DELETE, "/api/v1/users/{user}", Need::Admin),
    // Checked again in the handler: admins, or the user themself.
    route(Method::PUT, "/api/v1/users/{user}/password", Need::User),
    route(Method::GET, "/api/v1/tokens", Need::User),
    route(Method::POST, "/api/v1/tokens", Need::User),
    // Checked again in the handler: admins, or the token's owner.
    route(Method::DELETE, "/api/v1/tokens/{id}", Need::User),
    route(Method::GET, "/api/v1/teams", Need::User),
    route(Method::POST, "/api/v1/teams", Need::Admin),
    route(
        Method::GET,
        "/api/v1/teams/{team}",
        Need::Team(Role::Viewer),
    ),
    // A team's admins manage its members; the blast radius (grants) is
    // given by a server admin.
    route(
        Method::PUT,
        "/api/v1/teams/{team}/members/{user}",
        Need::Team(Role::Admin),
    ),
    route(
        Method::DELETE,
        "/api/v1/teams/{team}/members/{user}",
        Need::Team(Role::Admin),
    ),
    route(
        Method::POST,
        "/api/v1/teams/{team}/halt",
        Need::Team(Role::Admin),
    ),
    route(
        Method::PUT,
        "/api/v1/teams/{team}/grants/{target}",
        Need::Admin,
    ),
    route(Method::GET, "/api/v1/targets", Need::AnyTeam(Role::Viewer)),
    route(Method::PUT, "/api/v1/targets/{target}", Need::Admin),
    route(Method::DELETE, "/api/v1/targets/{target}", Need::Admin),
    route(Method::GET, "/api/v1/packages", Need::AnyTeam(Role::Viewer)),
    route(
        Method::GET,
        "/api/v1/packages/{package}",
        Need::AnyTeam(Role::Viewer),
    ),
    route(
        Method::GET,
        "/api/v1/teams/{team}/trends",
        Need::Team(Role::Viewer),
    ),
    route(Method::PUT, "/api/v1/teams/{team}/namespaces", Need::Admin),
    route(
        Method::POST,
        "/api/v1/teams/{team}/packages",
        Need::Team(Role::Publisher),
    ),
    route(
        Method::GET,
        "/api/v1/teams/{team}/runs",
        Need::Team(Role::Viewer),
    ),
    route(
        Method::POST,
        "/api/v1/teams/{team}/runs",
        Need::Team(Role::Runner),
    ),
    route(
        Method::GET,
        "/api/v1/teams/{team}/runs/{run}",
        Need::Team(Role::Viewer),
    ),
    route(
        Method::POST,
        "/api/v1/teams/{team}/runs/{run}/halt",
        Need::Team(Role::Runner),
    ),
    route(Method::POST, "/api/v1/halt", Need::Admin),
    route(Method::POST, "/api/v1/resume", Need::Admin),
    route(Method::GET, "/api/v1/audit", Need::Admin),
    // Alertmanager delivers with a token (`http_config.authorization` in
    // its webhook config): any user, e.g. one made for it with no team.
    route(Method::POST, "/api/v1/alerts", Need::User),
    route(Method::GET, "/api/v1/alerts", Need::Admin),
    route(
        Method::GET,
        "/api/v1/teams/{team}/runs/{run}/report/{format}",
        Need::Team(Role::Viewer),
    ),
    route(
        Method::GET,
        "/api/v1/teams/{team}/diff",
        Need::Team(Role::Viewer),
    ),
    route(Method::GET, "/api/v1/webhooks", Need::Admin),
    route(Method::PUT, "/api/v1/webhooks/{name}", Need::Admin),
    route(Method::DELETE, "/api/v1/webhooks/{name}", Need::Admin),
    route(
        Method::GET,
        "/api/v1/teams/{team}/runs/{run}/events",
        Need::Team(Role::Viewer),
    ),
    route(
        Method::GET,
        "/api/v1/teams/{team}/schedules",
        Need::Team(Role::Viewer),
    ),
    route(
        Method::POST,
        "/api/v1/teams/{team}/schedules",
        Need::Team(Role::Runner),
    ),
    route(
        Method::POST,
        "/api/v1/teams/{team}/schedules/{id}/pause",
        Need::Team(Role::Runner),
    ),
    route(
        Method::POST,
        "/api/v1/teams/{team}/schedules/{id}/resume",
        Need::Team(Role::Runner),
    ),
    route(
        Method::DELETE,
        "/api/v1/teams/{team}/schedules/{id}",
        Need::Team(Role::Runner),
    ),
    // Game days: any user, then the seat at the game day decides (the
    // handler): the plan's seats, responders, or "no such game day".
    route(Method::GET, "/api/v1/gamedays", Need::User),
    // Checked again in the handler: the runner role in the villains' team.
    route(
        Method::POST,
        "/api/v1/gamedays",
        Need::AnyTeam(Role::Runner),
    ),
    route(Method::GET, "/api/v1/gamedays/{id}", Need::User),
    route(Method::POST, "/api/v1/gamedays/{id}/{action}", Need::User),
    route(
        Method::GET,
        "/api/v1/gamedays/{id}/review/{format}",
        Need::User,
    ),
    route(
        Method::GET,
        "/api/v1/scoreboard",
        Need::AnyTeam(Role::Viewer),
    ),
    // The web pages.
    route(Method::GET, "/login", Need::Open),
    route(Method::POST, "/login", Need::Open),
    route(Method::POST, "/logout", Need::User),
    route(Method::GET, "/", Need::AnyTeam(Role::Viewer)),
    route(
        Method::GET,
        "/packages/{package}",
        Need::AnyTeam(Role::Viewer),
    ),
    // Checked again in the handler: the runner role in the team the form
    // names.
    route(Method::POST, "/launch", Need::AnyTeam(Role::Runner)),
    route(Method::GET, "/teams/{team}/runs", Need::Team(Role::Viewer)),
    route(
        Method::GET,
        "/teams/{team}/runs/{run}",
        Need::Team(Role::Viewer),
    ),
    route(
        Method::POST,
        "/teams/{team}/runs/{run}/halt",
        Need::Team(Role::Runner),
    ),
    route(
        Method::GET,
        "/teams/{team}/runs/{run}/report/{format}",
        Need::Team(Role::Viewer),
    ),
    route(Method::POST, "/login/token", Need::Open),
    route(
        Method::GET,
        "/teams/{team}/schedules",
        Need::Team(Role::Viewer),
    ),
    route(
        Method::POST,
        "/teams/{team}/schedules",
        Need::Team(Role::Runner),
    ),
    route(
        Method::POST,
        "/teams/{team}/schedules/{id}/{action}",
        Need::Team(Role::Runner),
    ),
    route(Method::GET, "/teams/{team}/diff", Need::Team(Role::Viewer)),
    route(Method::GET, "/gamedays", Need::User),
    route(Method::POST, "/gamedays", Need::AnyTeam(Role::Runner)),
    route(Method::GET, "/gamedays/{id}", Need::User),
    route(Method::POST, "/gamedays/{id}/{action}", Need::User),
    route(Method::GET, "/scoreboard", Need::AnyTeam(Role::Viewer)),
    route(Method::GET, "/admin", Need::Admin),
    route(Method::POST, "/admin/teams", Need::Admin),
    route(Method::POST, "/admin/users", Need::Admin),
    route(Method::POST, "/admin/members", Need::Admin),
    route(Method::POST, "/admin/targets", Need::Admin),
    route(Method::POST, "/admin/grants", Need::Admin),
    route(Method::POST, "/halt-all", Need::Admin),
    route(Method::POST, "/resume-all", Need::Admin),
];

/// Whether `path` is a web page (answered in HTML; a stranger is sent to
/// the login page) rather than the API.
pub fn is_page(path: &str) -> bool {
    !path.starts_with("/api/") && path != "/healthz" && path != "/metrics"
}

/// What the table says of `method` on the matched template `path`:
/// anything unlisted needs an admin.
pub fn need(method: &Method, path: &str) -> Need {
    ROUTES
        .iter()
        .find(|r| r.method == method && r.path == path)
        .map_or(Need::Admin, |r| r.need)
}

/// The value of `{name}` in `uri_path` for the template `template`.
pub fn path_param<'a>(template: &str, uri_path: &'a str, name: &str) -> Option<&'a str> {
    let wanted = format!("{{{name}}}");
    template
        .split('/')
        .zip(uri_path.split('/'))
        .find(|(t, _)| *t == wanted)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_is_listed_once_and_unlisted_ones_need_an_admin() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} listed twice",
                    a.method,
                    a.path
                );
            }
        }
        assert_eq!(need(&Method::GET, "/healthz"), Need::Open);
        assert_eq!(need(&Method::DELETE, "/healthz"), Need::Admin);
        assert_eq!(need(&Method::GET, "/api/v1/secret-new-thing"), Need::Admin);
    }

    #[test]
    fn path_parameters_come_from_the_template() {
        assert_eq!(
            path_param(
                "/api/v1/teams/{team}/runs/{run}",
                "/api/v1/teams/payments/runs/7",
                "team"
            ),
            Some("payments")
        );
        assert_eq!(path_param("/api/v1/teams", "/api/v1/teams", "team"), None);
    }
}
