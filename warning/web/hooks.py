"""Provider webhooks (DESIGN §4): Twilio status, inbound SMS, voice and keypress; Kannel DLR and MO; device acks.

Each hook authenticates first (Twilio's signature, a secret in the URL, a device's token) and changes
nothing when that fails. A receipt it cannot use is logged and answered 204: the provider must not retry it.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDict, MultiDictProxy
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from warning.acks import ReplyOutcome
from warning.bootstrap import Services
from warning.channel import GATHER_URL_SLOT, InboundMessage, ReceiptEvent
from warning.delivery import DeliveryState
from warning.delivery_store import Row
from warning.errors import BadRequest, Forbidden
from warning.web.bodies import read_form, read_json
from warning.web.keys import registry_key, services_key, settings_key
from warning.web.openapi import error_responses
from warning.web.routing import ApiRoutes

logger = logging.getLogger(__name__)
routes = ApiRoutes("webhooks")
S = DeliveryState
TWIML = "text/xml"
FORBIDDEN = error_responses(403)
#: the help text (after the signature): what this number is and how to confirm; no Latin letters, no codes
HELP_ZH = "本号码用于发送预警信息。收到预警短信后请回复1确认；同时有多条预警时，请按短信中的提示回复。"


def public_base(request: web.Request) -> str:
    settings = request.app[settings_key]
    return (settings.server.public_url or f"http://{settings.server.host}:{settings.server.port}").rstrip("/")


def twilio_tokens(services: Services, channel: str | None) -> list[str]:
    """The auth tokens a Twilio request may be signed with: its channel's, else every Twilio channel's."""
    tokens: dict[str, str] = {}
    for name, table in services.channel_configs.items():
        if table.get("provider") != "twilio":
            continue
        env_name = table.get("auth_token_env")
        token = os.environ.get(str(env_name), "") if env_name else str(table.get("auth_token") or "")
        if token:
            tokens[name] = token
    if channel in tokens:
        return [tokens[channel]]
    return list(tokens.values())


def _valid(token: str, url: str, params: Mapping[str, str], signature: str) -> bool:
    """Twilio's check; the exact URL first (one HMAC), then the validator's with/without-port variants."""
    validator = RequestValidator(token)
    if hmac.compare_digest(validator.compute_signature(url, params).encode(), signature.encode()):
        return True
    return bool(validator.validate(url, params, signature))


async def signed_form(request: web.Request) -> Mapping[str, str]:
    """The posted form, once `X-Twilio-Signature` proves Twilio sent it (public_url + path + query); else 403."""
    signature = request.headers.get("X-Twilio-Signature", "")
    form = await read_form(request)
    # a urlencoded form (what Twilio posts) is all text: check and hand on the parsed form itself
    params: Mapping[str, str]
    if all(isinstance(v, str) for v in form.values()):
        params = cast("Mapping[str, str]", form)
    else:  # files in a multipart form are not signed
        params = MultiDictProxy(MultiDict((k, v) for k, v in form.items() if isinstance(v, str)))
    url = public_base(request) + request.raw_path
    tokens = twilio_tokens(request.app[services_key], request.query.get("c"))
    if not signature or not any(_valid(t, url, params, signature) for t in tokens):
        logger.warning("webhook %s refused: bad or missing Twilio signature", request.path)
        raise Forbidden("invalid signature", "签名无效 the request signature does not match")
    return params


def merged(request: web.Request, form: Mapping[str, str]) -> dict[str, str]:
    """Query and form parameters together (the form wins; of a repeated name, the last value)."""
    params = dict(request.query.items())
    params.update(form.items())
    return params


def _inbound(services: Services, provider: str, name: str, params: Mapping[str, str]) -> InboundMessage | None:
    """An inbound SMS read by the adapter that owns its format: the channel named in the URL, else the
    first configured channel of that provider (an inbound number's webhook is often set without `c`)."""
    names = [name] if name in services.channels else [
        n for n, cfg in services.channel_configs.items() if cfg.get("provider") == provider]
    for n in names:
        parse = getattr(services.channels.get(n), "parse_inbound", None)
        if parse is not None:
            msg: InboundMessage | None = parse(params)
            return msg
    logger.warning("inbound %s SMS but no %s channel is configured to read it", provider, provider)
    return None


def _parse(services: Services, channel: str, params: Mapping[str, str]) -> ReceiptEvent | None:
    adapter = services.channels.get(channel)
    if adapter is None:
        logger.warning("receipt for unknown channel %r ignored", channel[:40])
        return None
    return adapter.parse_receipt(params)


@routes.post("/hooks/twilio/status", summary="Twilio message and call status callbacks (signed)", roles=None,
             responses={"204": {"description": "taken (or ignored when unknown)"}, **FORBIDDEN})
async def twilio_status(request: web.Request) -> web.Response:
    form = await signed_form(request)
    services = request.app[services_key]
    event = _parse(services, request.query.get("c", ""), merged(request, form))
    if event is not None:
        await services.receipts.submit(event)
    return web.Response(status=204)


def reply_text(outcome: ReplyOutcome, *, signature: str, title: str = "") -> str:
    """What we answer a reply with (an SMS of ours: the signature first): a confirmation naming the warning, a
    thank-you for a report, or the help text."""
    title = title or outcome.headline or "预警信息"
    if outcome.text:
        return outcome.text
    if outcome.kind == "acked":
        return f"{signature}已确认收到「{title}」，谢谢。"
    if outcome.kind == "report":
        return f"{signature}已收到您关于「{title}」的反馈，谢谢。如已收到预警，请回复1确认。"
    return help_text(signature)


def help_text(signature: str) -> str:
    """The help text, signed."""
    return f"{signature}{HELP_ZH}"


async def _reply(services: Services, msg: InboundMessage) -> str:
    signature = services.messages.issuer.signature
    try:
        outcome = await services.replies.handle(msg)
        record = await services.warnings.get(outcome.warning_id) if outcome.warning_id else None
        return reply_text(outcome, signature=signature, title=services.messages.title(record) if record else "")
    except Exception:  # a person must always get an answer
        logger.exception("reply on %s could not be handled", msg.channel)
        return help_text(signature)


@routes.post("/hooks/twilio/sms", summary="Inbound SMS (replies, 回执); answers TwiML (signed)", roles=None,
             responses={"200": {"description": "TwiML MessagingResponse"}, **FORBIDDEN})
async def twilio_sms(request: web.Request) -> web.Response:
    form = await signed_form(request)
    services = request.app[services_key]
    msg = _inbound(services, "twilio", request.query.get("c", ""), form)
    twiml = MessagingResponse()
    twiml.message(await _reply(services, msg) if msg is not None else help_text(services.messages.issuer.signature))
    return web.Response(text=str(twiml), content_type=TWIML)


async def _row_of(services: Services, channel: str, ref: str | None, delivery: str | None) -> Row | None:
    event = ReceiptEvent(channel=channel, provider_ref=ref, delivery_id=delivery, state=S.SENT, at=None,
                         error_code=None, raw_status="lookup")
    found = (await services.receipts.locate([event]))[0] if (ref or delivery) else None
    if not found:
        return None
    wid, _, did = found.partition(":")
    return await services.deliveries.get(wid, did)


@routes.post("/hooks/twilio/voice", summary="TwiML for a warning call (when the call is placed with a URL; signed)",
             roles=None, responses={"200": {"description": "TwiML VoiceResponse"}, **FORBIDDEN})
async def twilio_voice(request: web.Request) -> web.Response:
    form = await signed_form(request)
    services = request.app[services_key]
    channel = request.query.get("c", "")
    row = await _row_of(services, channel, form.get("CallSid"), request.query.get("d"))
    record = await services.warnings.get(row.delivery.warning_id) if row else None
    if row is None or record is None:
        resp = VoiceResponse()
        resp.say("您有一条预警信息，请查看短信。", language="cmn-CN")
        return web.Response(text=str(resp), content_type=TWIML)
    _, meta = services.messages.render(record, "voice", row.lang)
    gather = f"{public_base(request)}/hooks/twilio/gather?{urlencode({'c': channel, 'd': row.delivery.id})}"
    twiml = str(meta.get("twiml") or "")
    if not twiml:
        resp = VoiceResponse()
        g = resp.gather(num_digits=1, action=gather, method="POST", timeout=8)
        g.say(services.messages.render(record, "voice", row.lang)[0], language="cmn-CN")
        twiml = str(resp)
    return web.Response(text=twiml.replace(GATHER_URL_SLOT, gather.replace("&", "&amp;")), content_type=TWIML)


@routes.post("/hooks/twilio/gather", summary="Keypress during a warning call: 1 confirms (signed)", roles=None,
             responses={"200": {"description": "TwiML VoiceResponse"}, **FORBIDDEN})
async def twilio_gather(request: web.Request) -> web.Response:
    form = await signed_form(request)
    services = request.app[services_key]
    event = _parse(services, request.query.get("c", ""), merged(request, form))
    resp = VoiceResponse()
    if event is not None and event.ack:
        await services.receipts.submit(event)
        resp.say("已确认收到，谢谢。", language="cmn-CN")
    else:
        if event is not None:
            await services.receipts.submit(event)  # any key: the call was answered and heard
        resp.say("未确认。如已收到，请按1。", language="cmn-CN")
    return web.Response(text=str(resp), content_type=TWIML)


def _kannel_secret_ok(request: web.Request) -> None:
    """Kannel's callbacks carry `[hooks] kannel_secret` as `k`; with no secret configured they are all refused."""
    secret = str(request.app[settings_key].section("hooks").get("kannel_secret", "") or "")
    given = request.query.get("k", "")
    if not secret or not hmac.compare_digest(secret.encode(), given.encode()):
        logger.warning("kannel webhook %s refused: bad secret", request.path)
        raise Forbidden("invalid secret", "密钥无效 the URL secret does not match")


async def _params(request: web.Request) -> dict[str, str]:
    form = await read_form(request) if request.method == "POST" else MultiDict[str]()
    return merged(request, {k: v for k, v in form.items() if isinstance(v, str)})


async def kannel_dlr(request: web.Request) -> web.Response:
    _kannel_secret_ok(request)
    params = await _params(request)
    services = request.app[services_key]
    event = _parse(services, params.get("c", ""), params)
    if event is not None:
        await services.receipts.submit(event)
    return web.Response(status=204)


async def kannel_mo(request: web.Request) -> web.Response:
    _kannel_secret_ok(request)
    params = await _params(request)
    services = request.app[services_key]
    msg = _inbound(services, "kannel", params.get("c", ""), params)
    if msg is None:
        return web.Response(text="", content_type="text/plain")
    # Kannel sends the answer back to the sender as an SMS
    return web.Response(text=await _reply(services, msg), content_type="text/plain")


for _method in ("GET", "POST"):
    routes.route(_method, "/hooks/kannel/dlr", summary="Kannel delivery report (secret `k` in the URL)", roles=None,
                 responses={"204": {"description": "taken"}, **FORBIDDEN})(kannel_dlr)
    routes.route(_method, "/hooks/kannel/mo", summary="Kannel inbound SMS (reply; secret `k`); answers the reply text",
                 roles=None, responses={"200": {"description": "text/plain reply"}, **FORBIDDEN})(kannel_mo)


@routes.post("/hooks/devices/ack", summary="An e-screen or broadcast terminal confirms display or playback", roles=None,
             description="JSON or form: delivery_id, status (received|displayed|played|confirmed|failed), token "
                         "(the device's own token; or `Authorization: Bearer <token>`).",
             responses={"204": {"description": "taken"}, **error_responses(400, 403)})
async def device_ack(request: web.Request) -> web.Response:
    body: dict[str, Any]
    if request.content_type == "application/json":
        try:
            raw = await read_json(request)
        except BadRequest:
            raw = None
        body = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
    else:
        body = await _params(request)
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else str(body.get("token", ""))
    device = await request.app[registry_key].device_by_token(token) if token else None
    if device is None or not device.active:
        raise Forbidden("invalid device token", "设备令牌无效 unknown device token")
    services = request.app[services_key]
    for name, adapter in services.channels.items():
        if adapter.capabilities.kind.value != device.kind:
            continue
        event = adapter.parse_receipt(body)
        if event is None:
            return web.Response(status=204)
        row = await _row_of(services, name, event.provider_ref, event.delivery_id)
        if row is None:
            continue
        if row.delivery.recipient_id != device.id:
            raise Forbidden("not this device's delivery", "该投递不属于此设备 the delivery is not this device's")
        await services.receipts.submit(event)
        return web.Response(status=204)
    logger.warning("device %s acknowledged a delivery we do not know", device.id)
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    from warning.web.app import add_routes

    add_routes(app, routes)
