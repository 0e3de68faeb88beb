//! Authorization: the RBAC authorizer ([`rbac`]) on the attributes upstream derives
//! from each request ([`request_info`]).

pub mod rbac;
pub mod request_info;
