//! The server: operators, templates and the hypervisor; carries out authorised requests.

use alloc::string::String;
use warden_mgmt_proto::{Error, HvStatus, OperatorList, Reply, Request, Signer};

use crate::hypervisor::Hypervisor;
use crate::templates::{TemplateStore, is_name};

/// What the management domain is configured with at boot.
#[derive(Debug, Clone)]
pub struct Config {
    pub operators: OperatorList,
    /// The label new domains are created under before their build → run transition.
    pub build_label: String,
    /// Bytes of template images the store may hold.
    pub template_budget: usize,
    /// Signs every response (its public half is in every hello; operators pin it).
    pub response_key: Signer,
}

#[derive(Debug)]
pub struct Server<H> {
    pub(crate) operators: OperatorList,
    build_label: String,
    templates: TemplateStore,
    hv: H,
    pub(crate) response_key: Signer,
}

fn hv_err(call: &str) -> impl FnOnce(HvStatus) -> Error + '_ {
    move |status| Error::Hypervisor {
        call: call.into(),
        status,
    }
}

impl<H: Hypervisor> Server<H> {
    pub fn new(config: Config, hv: H) -> Server<H> {
        Server {
            operators: config.operators,
            build_label: config.build_label,
            templates: TemplateStore::new(config.template_budget),
            hv,
            response_key: config.response_key,
        }
    }

    /// The response key's SEC1 compressed public half (what operators pin).
    pub fn response_key(&self) -> alloc::vec::Vec<u8> {
        self.response_key.public_sec1()
    }

    pub fn hypervisor(&mut self) -> &mut H {
        &mut self.hv
    }

    /// Carries out a request whose operator is already authenticated and authorised.
    pub(crate) fn execute(&mut self, request: Request) -> Result<Reply, Error> {
        match request {
            Request::HostInfo => self
                .hv
                .host_info()
                .map(Reply::HostInfo)
                .map_err(hv_err("physinfo")),
            Request::DomainList => self.hv.list().map(Reply::Domains).map_err(hv_err("list")),
            Request::DomainInfo { id } => self
                .on_domain(id, "getinfo", |hv| hv.info(id))
                .map(Reply::Domain),
            Request::DomainPause { id } => self
                .on_domain(id, "pause", |hv| hv.pause(id))
                .map(|()| Reply::Done),
            Request::DomainResume { id } => self
                .on_domain(id, "unpause", |hv| hv.unpause(id))
                .map(|()| Reply::Done),
            Request::DomainDestroy { id } => self
                .on_domain(id, "destroy", |hv| hv.destroy(id))
                .map(|()| Reply::Done),
            Request::DomainSetPriority { id, priority } => self
                .on_domain(id, "setpriority", |hv| hv.set_priority(id, priority))
                .map(|()| Reply::Done),
            Request::DomainCreate { template, name } => self.create(&template, &name),
            Request::TemplateAdd(t) => self.templates.add(t).map(|()| Reply::Done),
            Request::TemplateList => Ok(Reply::Templates(self.templates.list())),
            Request::TemplateRm { name } => self.templates.remove(&name).map(|()| Reply::Done),
            Request::HostShutdown => self
                .hv
                .host_shutdown()
                .map(|()| Reply::Done)
                .map_err(hv_err("shutdown")),
            Request::AuditRead { from_seq } => self
                .hv
                .audit_read(from_seq)
                .map(Reply::Audit)
                .map_err(hv_err("audit_read")),
        }
    }

    /// A call on one domain: an `InvalidArgument` answer for an id the hypervisor does not
    /// know is reported as [`Error::NoSuchDomain`].
    fn on_domain<T>(
        &mut self,
        id: u32,
        call: &str,
        op: impl FnOnce(&mut H) -> Result<T, HvStatus>,
    ) -> Result<T, Error> {
        match op(&mut self.hv) {
            Ok(v) => Ok(v),
            Err(HvStatus::InvalidArgument)
                if self.hv.info(id) == Err(HvStatus::InvalidArgument) =>
            {
                Err(Error::NoSuchDomain(id))
            }
            Err(status) => Err(Error::Hypervisor {
                call: call.into(),
                status,
            }),
        }
    }

    /// create → build → transition → unpause; a failure after create destroys the partial
    /// domain so that nothing else changes.
    fn create(&mut self, template: &str, name: &str) -> Result<Reply, Error> {
        if !is_name(name) {
            return Err(Error::BadTemplate(
                "domain name must be 1-31 characters of A-Z a-z 0-9 _ -".into(),
            ));
        }
        let t = self.templates.get(template)?;
        let build = t.build_label.as_deref().unwrap_or(&self.build_label);
        let id = self
            .hv
            .create(name, build, t.memory_mib, t.priority, &t.args)
            .map_err(|status| match status {
                HvStatus::WallConflict => Error::WallConflict {
                    label: t.label.clone(),
                },
                status => Error::CreateFailed {
                    step: "create".into(),
                    status,
                },
            })?;
        let steps = (|| {
            self.hv.build(id, &t.image).map_err(|s| ("build", s))?;
            self.hv
                .transition(id, &t.label)
                .map_err(|s| ("transition", s))?;
            self.hv.unpause(id).map_err(|s| ("unpause", s))
        })();
        match steps {
            Ok(()) => Ok(Reply::Created { id }),
            Err((step, status)) => {
                // The create succeeded, so the caller may destroy what it built; if even that is
                // refused the error still names the first failure.
                let _ = self.hv.destroy(id);
                if status == HvStatus::WallConflict {
                    // Admission of the run label at the start (the build label was admitted at
                    // create): the operator is told in the policy's words which label the wall
                    // refused.
                    return Err(Error::WallConflict {
                        label: t.label.clone(),
                    });
                }
                Err(Error::CreateFailed {
                    step: step.into(),
                    status,
                })
            }
        }
    }
}
