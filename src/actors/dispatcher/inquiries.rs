//! The dispatcher's inquiry commands: `!st2inquiries` lists the pending StackStorm
//! inquiries the person may answer, `!st2answer <id> key=value …` answers one, and a press
//! of an answer button ([`ButtonPressed`]) answers one as the person who pressed.
//!
//! Every StackStorm call runs with the credential the bridge uses for that person's
//! commands (their own session in client-side mode, else the bridge's), so StackStorm's
//! own `users`/`roles` check judges the right account. An answer is read and checked
//! against the inquiry's schema before it is sent: a wrong value is explained by field
//! name and never reaches StackStorm. A press passes the access rules as the built-in
//! `answer` for the presser, exactly as if they had typed it.

use std::{collections::BTreeMap, future::Future};

use actix::prelude::*;
use futures_util::future::join_all;
use serde_json::{json, Map, Value};

use super::{subject_in, Dispatcher, ExecuteError};
use crate::{
    acl::CommandRef,
    actors::{
        acl_gate::Authorize,
        as_sender::call_as_sender,
        messages::buttons::{
            Button, ButtonAction, ButtonOutcome, ButtonPressed, InquiryAnswer, OfferButtons,
            RegisterButtons,
        },
        session_manager::{NoSession, UserSt2Name},
        token_renewer::BridgeUsername,
    },
    domain::message::{InboundMessage, Target},
    inquiry::{
        answer::{example_answer, quote_if_needed},
        button_offer, is_inquiry_id, may_answer, parse_answer,
        schema::display_value,
        validate_response, AnswerError, Inquiry, MayAnswer, St2Identity,
    },
    metrics::CommandOutcome,
    st2::{Credential, St2Client, St2Error},
    store::model::UserKey,
};

/// Inquiries shown in one listing; the rest are counted.
const MAX_LISTED: usize = 10;

/// Inquiries offered with buttons after one listing (one message each): more would bury
/// the channel; the listing gives the typed form for all.
const MAX_OFFERED: usize = 5;

/// An inquiry command, after access control allowed it.
pub(super) enum InquiryCommand {
    /// `!st2inquiries`.
    List,
    /// `!st2answer <args>`.
    Answer(String),
}

/// The connections that show buttons.
#[derive(Default)]
pub(super) struct InquiryState {
    buttons: BTreeMap<String, ButtonConnection>,
}

struct ButtonConnection {
    offers: Recipient<OfferButtons>,
    outcomes: Recipient<ButtonOutcome>,
}

/// Why an answer was not accepted.
enum AnswerFailure {
    /// The bridge's own check of the answer against the schema: nothing was sent.
    Invalid(AnswerError),
    /// StackStorm (or getting a credential) failed.
    Call(ExecuteError),
}

/// One listed inquiry, ready for the template.
struct Listed {
    inquiry: Inquiry,
    /// What StackStorm will still check, when the bridge cannot tell.
    note: Option<String>,
    asked_by: Option<String>,
}

/// Which action or workflow asked: the inquiry's execution, and its parent's action when
/// it runs inside a workflow (`parent`, with the task in `context.orquesta.task_name` or
/// `context.chain.name`). `None` when StackStorm will not say.
async fn asked_by(client: &St2Client, cred: &Credential, id: &str) -> Option<String> {
    let execution = client.get_execution(cred, id).await.ok()?;
    let text = |pointer: &str| {
        execution
            .pointer(pointer)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let task = text("/context/orquesta/task_name").or_else(|| text("/context/chain/name"));
    if let Some(parent) = text("/parent") {
        let workflow = client
            .get_execution(cred, &parent)
            .await
            .ok()
            .and_then(|p| {
                p.pointer("/action/ref")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
        if let Some(workflow) = workflow {
            return Some(match task {
                Some(task) => format!("workflow `{workflow}` (task `{task}`)"),
                None => format!("workflow `{workflow}`"),
            });
        }
    }
    let action = text("/action/ref")?;
    Some(match text("/context/user") {
        Some(user) => format!("`{action}` (run by {user})"),
        None => format!("`{action}`"),
    })
}

impl Dispatcher {
    /// Runs an inquiry command that access control allowed.
    pub(super) fn handle_inquiry(
        &mut self,
        msg: InboundMessage,
        command: InquiryCommand,
        ctx: &mut Context<Self>,
    ) {
        match command {
            InquiryCommand::List => self.list_inquiries(msg, ctx),
            InquiryCommand::Answer(args) => self.answer_inquiry(msg, args, ctx),
        }
    }

    fn answer_command(&self) -> String {
        format!("{}answer", self.command_prefix())
    }

    /// Why StackStorm (or the bridge) did not take an inquiry call, in plain words.
    fn inquiry_reason(&self, e: &ExecuteError, id: &str) -> String {
        let prefix = self.command_prefix();
        let session_start = format!("{prefix}session_start <word>");
        let with_request_id = |text: String, e: &St2Error| match e.request_id() {
            Some(rid) => format!("{text} (StackStorm request id: {rid})"),
            None => text,
        };
        match e {
            ExecuteError::St2(
                err @ St2Error::Api {
                    status: 403,
                    faultstring,
                    ..
                },
            ) => {
                // RBAC (`ResourceTypeAccessDeniedError`): `User "u" doesn't have required
                // permission "inquiry_respond"` — name the permission; otherwise the
                // inquiry's own users/roles list refused the user.
                let text = match required_permission(faultstring) {
                    Some(permission) => format!(
                        "StackStorm does not let your account answer inquiries (with RBAC it needs the `{permission}` permission)."
                    ),
                    None => "StackStorm does not allow you to answer it: an inquiry can name the StackStorm users and roles who may.".to_owned(),
                };
                with_request_id(text, err)
            }
            ExecuteError::St2(err @ St2Error::Api { status: 404, .. }) => with_request_id(
                format!("StackStorm has no inquiry `{id}`; `{prefix}inquiries` lists the pending ones."),
                err,
            ),
            ExecuteError::St2(
                err @ St2Error::Api {
                    status: 400,
                    faultstring,
                    ..
                },
            ) => {
                let text = if faultstring.contains("has already been responded to") {
                    "it has already been answered.".to_owned()
                } else if faultstring.contains("timed out") {
                    "it timed out; StackStorm no longer takes answers to it.".to_owned()
                } else if faultstring.contains("is not an inquiry") {
                    format!("`{id}` is an execution, not an inquiry.")
                } else if let Some((_, why)) =
                    faultstring.split_once("did not pass schema validation.")
                {
                    format!("StackStorm did not accept the answer: {}", why.trim())
                } else {
                    format!("StackStorm did not accept it: {faultstring}")
                };
                with_request_id(text, err)
            }
            ExecuteError::St2(err) => err.user_message(),
            ExecuteError::Auth(_) => St2Error::Unauthorized(String::new()).user_message(),
            ExecuteError::NoSession(NoSession::Missing) => format!(
                "you have no StackStorm session, so I cannot answer as you. Send me `{session_start}` in a direct message and open the link."
            ),
            ExecuteError::NoSession(NoSession::Expired) => format!(
                "your StackStorm session has expired. Send me `{session_start}` in a direct message to start a new one."
            ),
            ExecuteError::UserRejected => format!(
                "StackStorm no longer accepts your session (it expired or was revoked), so it has ended. Send me `{session_start}` in a direct message to start a new one."
            ),
        }
    }

    /// Why the inquiries could not be listed, in plain words.
    fn list_reason(&self, e: &ExecuteError) -> String {
        match e {
            ExecuteError::St2(St2Error::Api { status: 403, .. }) => {
                "StackStorm does not let your account list inquiries (with RBAC it needs the `inquiry_list` permission).".into()
            }
            ExecuteError::St2(St2Error::Api { status: 404, .. }) => {
                "this StackStorm has no inquiries API.".into()
            }
            other => self.inquiry_reason(other, ""),
        }
    }

    fn count_failure(&self, e: &ExecuteError) {
        let outcome = match e {
            ExecuteError::NoSession(_) | ExecuteError::UserRejected => CommandOutcome::NoSession,
            _ => CommandOutcome::St2Error,
        };
        self.metrics.command(outcome);
    }

    /// `!st2inquiries`: the pending inquiries this person may answer, with their fields and
    /// how to answer; buttons follow on connections that show them.
    fn list_inquiries(&mut self, msg: InboundMessage, ctx: &mut Context<Self>) {
        let client = self.client.get();
        let renewer = self.renewer.clone();
        let sessions = self.sessions.clone();
        let user = UserKey(format!("{}:{}", msg.user.connection, msg.user.id));
        let fut = async move {
            let (list, me) = call_as_sender(&renewer, sessions.clone(), user.clone(), |cred| {
                let client = &client;
                async move {
                    let list = client.list_inquiries(&cred).await?;
                    // Who the credential is, from StackStorm itself when it says.
                    let me = client.current_user(&cred).await.ok().flatten();
                    Ok((list, me))
                }
            })
            .await?;
            let identity = match me {
                Some(me) => St2Identity {
                    username: Some(me.username),
                    roles: me.rbac.enabled.then_some(me.rbac.roles),
                    rbac_enabled: Some(me.rbac.enabled),
                },
                None => St2Identity {
                    username: match &sessions {
                        Some(s) => s.send(UserSt2Name(user.clone())).await.ok().flatten(),
                        None => renewer.send(BridgeUsername).await.ok().flatten(),
                    },
                    ..St2Identity::default()
                },
            };
            let mut hidden = 0usize;
            let mut listed = Vec::new();
            for inquiry in list.inquiries {
                match may_answer(&inquiry, &identity) {
                    MayAnswer::Yes => listed.push((inquiry, None)),
                    MayAnswer::Unknown(why) => listed.push((inquiry, Some(why))),
                    MayAnswer::No(_) => hidden += 1,
                }
            }
            let total = listed.len();
            listed.truncate(MAX_LISTED);
            let ids: Vec<String> = listed.iter().map(|(i, _)| i.id.clone()).collect();
            // Best effort: where an inquiry comes from is worth a look-up, not a failure.
            let origins = call_as_sender(&renewer, sessions.clone(), user.clone(), |cred| {
                let (client, ids) = (&client, &ids);
                async move { Ok(join_all(ids.iter().map(|id| asked_by(client, &cred, id))).await) }
            })
            .await
            .unwrap_or_default();
            let listed: Vec<Listed> = listed
                .into_iter()
                .enumerate()
                .map(|(n, (inquiry, note))| Listed {
                    inquiry,
                    note,
                    asked_by: origins.get(n).cloned().flatten(),
                })
                .collect();
            Ok::<_, ExecuteError>((listed, total, hidden))
        };
        ctx.spawn(fut.into_actor(self).map(move |result, act, _ctx| {
            let (listed, total, hidden) = match result {
                Ok(r) => r,
                Err(e) => {
                    act.count_failure(&e);
                    tracing::warn!(error = %e, "listing inquiries failed");
                    let reason = act.list_reason(&e);
                    let text = act.templates.render(
                        "error",
                        &json!({"command": format!("{}inquiries", act.command_prefix()), "reason": reason}),
                    );
                    return act.reply(&msg, text);
                }
            };
            act.metrics.command(CommandOutcome::Builtin);
            let buttons = act.inquiries.buttons.get(&msg.room.connection).map(|b| b.offers.clone());
            let answer_command = act.answer_command();
            let mut offers = Vec::new();
            let items: Vec<Value> = listed
                .iter()
                .map(|l| {
                    let schema = l.inquiry.response_schema();
                    let offer = button_offer(&schema);
                    if let (Some(offer), true) =
                        (&offer, buttons.is_some() && offers.len() < MAX_OFFERED)
                    {
                        offers.push((l, offer.clone(), schema.clone()));
                    }
                    json!({
                        "id": l.inquiry.id,
                        "asked_by": l.asked_by,
                        "title": schema.title.as_deref().filter(|t| *t != "response_data"),
                        "note": l.note,
                        "example": example_answer(&schema),
                        "fields": schema.fields.iter().map(|f| json!({
                            "name": f.name,
                            "type": f.kind.as_str(),
                            "required": f.required,
                            "description": f.description,
                            "default": f.default.as_ref().map(|d| quote_if_needed(&display_value(d))),
                            "choices": f.choices.as_ref().map(|c| c.iter().map(|v| format!("`{}`", display_value(v))).collect::<Vec<_>>().join(", ")),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let text = act.templates.render(
                "inquiries",
                &json!({
                    "inquiries": items,
                    "shown": listed.len(),
                    "listed": total,
                    "more": total > listed.len(),
                    "hidden": hidden,
                    "hidden_one": hidden == 1,
                    "answer_command": answer_command,
                    "buttons": !offers.is_empty(),
                }),
            );
            act.reply(&msg, text);
            let Some(recipient) = buttons else {
                return;
            };
            // Same mailbox as the listing's `Deliver`: the buttons come after it.
            for (l, offer, schema) in offers {
                let field = schema.field(&offer.field);
                let question = field
                    .and_then(|f| f.description.clone())
                    .unwrap_or_else(|| format!("`{}`?", offer.field));
                let text = act.templates.render(
                    "inquiry_offer",
                    &json!({"id": l.inquiry.id, "asked_by": l.asked_by, "question": question}),
                );
                let fallback = format!(
                    "{text}\nAnswer with `{answer_command} {} {}`.",
                    l.inquiry.id,
                    example_answer(&schema)
                );
                // Buttons do not pass the connection's `Deliver`: masked here.
                let mask = &act.settings.mask;
                recipient.do_send(OfferButtons {
                    target: Target::reply_to(&msg.room),
                    text: mask.text(&text).into_owned(),
                    fallback: mask.text(&fallback).into_owned(),
                    posted: None,
                    buttons: offer
                        .choices
                        .into_iter()
                        .map(|c| Button {
                            label: c.label,
                            action: ButtonAction::Answer(InquiryAnswer {
                                inquiry_id: l.inquiry.id.clone(),
                                field: offer.field.clone(),
                                value: c.value,
                            }),
                        })
                        .collect(),
                });
            }
        }));
    }

    /// `!st2answer <inquiry id> key=value …`: read and checked against the inquiry's schema,
    /// then sent as this person.
    fn answer_inquiry(&mut self, msg: InboundMessage, args: String, ctx: &mut Context<Self>) {
        let args = crate::domain::command::normalise_text(&args);
        let (id, rest) = match args.trim().split_once(char::is_whitespace) {
            Some((id, rest)) => (id.to_owned(), rest.trim().to_owned()),
            None => (args.trim().to_owned(), String::new()),
        };
        if !is_inquiry_id(&id) {
            self.metrics.command(CommandOutcome::Invalid);
            let prefix = self.command_prefix();
            return self.reply(
                &msg,
                format!(
                    "usage: {prefix}answer <inquiry id> key=value … (`{prefix}inquiries` lists the pending inquiries and what they ask)"
                ),
            );
        }
        let user = UserKey(format!("{}:{}", msg.user.connection, msg.user.id));
        let fut = self.answer_future(user, id.clone(), move |schema| parse_answer(&rest, schema));
        ctx.spawn(fut.into_actor(self).map(move |result, act, _ctx| {
            let text = act.answer_reply(&id, &msg.user.name, result);
            act.reply(&msg, text);
        }));
    }

    /// Looks the inquiry up as `user`, builds the response with `build` against its schema,
    /// and sends it as `user`. The response sent, or why not.
    fn answer_future(
        &mut self,
        user: UserKey,
        id: String,
        build: impl FnOnce(&crate::inquiry::ResponseSchema) -> Result<Map<String, Value>, AnswerError>
            + 'static,
    ) -> impl Future<Output = Result<Map<String, Value>, AnswerFailure>> + 'static {
        let client = self.client.get();
        let renewer = self.renewer.clone();
        let sessions = self.sessions.clone();
        async move {
            let inquiry = call_as_sender(&renewer, sessions.clone(), user.clone(), |cred| {
                let (client, id) = (&client, &id);
                async move { client.get_inquiry(&cred, id).await }
            })
            .await
            .map_err(AnswerFailure::Call)?;
            let response = build(&inquiry.response_schema()).map_err(AnswerFailure::Invalid)?;
            call_as_sender(&renewer, sessions.clone(), user.clone(), |cred| {
                let (client, id, response) = (&client, &id, &response);
                async move { client.respond_inquiry(&cred, id, response).await }
            })
            .await
            .map_err(AnswerFailure::Call)?;
            Ok(response)
        }
    }

    /// The reply to an answer, typed or pressed; counts the outcome.
    fn answer_reply(
        &self,
        id: &str,
        by: &str,
        result: Result<Map<String, Value>, AnswerFailure>,
    ) -> String {
        match result {
            Ok(response) => {
                self.metrics.command(CommandOutcome::Builtin);
                tracing::info!(inquiry = %id, "inquiry answered");
                let answer = response
                    .iter()
                    .map(|(k, v)| format!("{k}={}", quote_if_needed(&display_value(v))))
                    .collect::<Vec<_>>()
                    .join(" ");
                self.templates.render(
                    "inquiry_answered",
                    &json!({"id": id, "by": by, "answer": answer}),
                )
            }
            Err(failure) => {
                let reason = match &failure {
                    AnswerFailure::Invalid(e) => {
                        self.metrics.command(CommandOutcome::Invalid);
                        let prefix = self.command_prefix();
                        format!(
                            "{e}. Nothing was sent to StackStorm; `{prefix}inquiries` shows what it asks."
                        )
                    }
                    AnswerFailure::Call(e) => {
                        self.count_failure(e);
                        tracing::warn!(inquiry = %id, error = %e, "answering an inquiry failed");
                        self.inquiry_reason(e, id)
                    }
                };
                self.templates
                    .render("inquiry_error", &json!({"id": id, "reason": reason}))
            }
        }
    }

    /// A press: access control as the built-in `answer` for the presser, then the answer
    /// as the presser; the outcome goes back to the connection.
    fn on_answer_pressed(
        &mut self,
        press: ButtonPressed,
        answer: InquiryAnswer,
        outcomes: Recipient<ButtonOutcome>,
        ctx: &mut Context<Self>,
    ) {
        let typed = format!("answer {} {}", answer.inquiry_id, answer.as_typed());
        tracing::info!(inquiry = %answer.inquiry_id, user = %press.user.id, connection = %press.user.connection, "answer button pressed");
        self.authorize_press(
            press,
            "answer",
            typed,
            outcomes,
            ctx,
            move |act, press, outcomes, ctx| {
                if !is_inquiry_id(&answer.inquiry_id) {
                    act.metrics.command(CommandOutcome::Invalid);
                    outcomes.do_send(act.press_outcome(
                        &press,
                        false,
                        "That button does not name an inquiry.".into(),
                    ));
                    return;
                }
                let user = UserKey(format!("{}:{}", press.user.connection, press.user.id));
                let (field, value) = (answer.field.clone(), answer.value.clone());
                let fut = act.answer_future(user, answer.inquiry_id.clone(), move |schema| {
                    let mut response = Map::new();
                    response.insert(field, value);
                    validate_response(response, schema)
                });
                ctx.spawn(fut.into_actor(act).map(move |result, act, _ctx| {
                    let accepted = result.is_ok();
                    let text = act.answer_reply(&answer.inquiry_id, &press.user.name, result);
                    outcomes.do_send(act.press_outcome(&press, accepted, text));
                }));
            },
        );
    }

    /// A press passes the access gate as the typed built-in `verb` (`typed`: the text after
    /// the prefixes) for the person who pressed, exactly as if they had typed it; allowed,
    /// `then` runs; refused (or no answer from the gate: it fails closed), only the presser
    /// is told.
    pub(super) fn authorize_press(
        &mut self,
        press: ButtonPressed,
        verb: &'static str,
        typed: String,
        outcomes: Recipient<ButtonOutcome>,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Self, ButtonPressed, Recipient<ButtonOutcome>, &mut Context<Self>)
            + 'static,
    ) {
        let verdict = self.gate.send(Authorize {
            subject: press_subject(&press),
            command: CommandRef::Builtin {
                verb: verb.to_owned(),
                text: typed.clone(),
            },
        });
        ctx.spawn(verdict.into_actor(self).map(move |verdict, act, ctx| {
            if verdict.is_ok_and(|v| v.allowed()) {
                return then(act, press, outcomes, ctx);
            }
            act.metrics.command(CommandOutcome::Denied);
            // In the audit like the same command typed and refused.
            act.record_unrun(
                &press.user,
                &press.room,
                &press.room_name,
                &format!("{}{typed} (button)", act.command_prefix()),
                crate::store::jobs::JobKind::Builtin {
                    command: verb.to_owned(),
                },
                crate::store::jobs::JobStatus::Refused,
                None,
            );
            let text = act.templates.render(
                "denied",
                &json!({"command": format!("{}{verb}", act.command_prefix()), "alias_ref": null}),
            );
            outcomes.do_send(act.press_outcome(&press, false, text));
        }));
    }
}

/// How the access rules see the person who pressed, where they pressed.
pub(super) fn press_subject(press: &ButtonPressed) -> crate::acl::Subject {
    subject_in(&press.user, &press.room, &press.room_name, &press.org)
}

impl Dispatcher {
    /// The outcome of `press`, for its connection, its text masked: outcomes do not pass
    /// the connection's `Deliver`, where every other message is.
    pub(super) fn press_outcome(
        &self,
        press: &ButtonPressed,
        accepted: bool,
        text: String,
    ) -> ButtonOutcome {
        ButtonOutcome {
            user: press.user.clone(),
            room: press.room.clone(),
            origin: press.origin.clone(),
            accepted,
            text: self.settings.mask.text(&text).into_owned(),
        }
    }
}

impl Handler<RegisterButtons> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: RegisterButtons, _ctx: &mut Self::Context) {
        self.inquiries.buttons.insert(
            msg.name,
            ButtonConnection {
                offers: msg.offers,
                outcomes: msg.outcomes,
            },
        );
    }
}

impl Dispatcher {
    /// Where `connection` shows buttons and their outcomes, if it does.
    pub(super) fn button_recipients(
        &self,
        connection: &str,
    ) -> Option<(Recipient<OfferButtons>, Recipient<ButtonOutcome>)> {
        self.inquiries
            .buttons
            .get(connection)
            .map(|b| (b.offers.clone(), b.outcomes.clone()))
    }
}

impl Handler<ButtonPressed> for Dispatcher {
    type Result = ();

    fn handle(&mut self, press: ButtonPressed, ctx: &mut Self::Context) {
        self.status.activity();
        let Some((_, outcomes)) = self.button_recipients(&press.user.connection) else {
            tracing::warn!(connection = %press.user.connection, "a button press from a connection without buttons; ignored");
            return;
        };
        match press.action.clone() {
            ButtonAction::Answer(answer) => self.on_answer_pressed(press, answer, outcomes, ctx),
            ButtonAction::Decide(decision) => {
                self.on_decision_pressed(press, decision, outcomes, ctx)
            }
        }
    }
}

/// The permission an RBAC refusal names (`… doesn't have required permission "<p>"`,
/// st2common/exceptions/rbac.py), when it is one.
fn required_permission(faultstring: &str) -> Option<&str> {
    let (_, rest) = faultstring.split_once("doesn't have required permission \"")?;
    let permission = rest.split('"').next()?;
    (!permission.is_empty()
        && permission
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_'))
    .then_some(permission)
}
