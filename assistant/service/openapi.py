"""The OpenAPI 3.1 description of the HTTP API, served at `GET /openapi.json`.

Written by hand next to the handlers (the API is eight endpoints): it documents the caps the
running server actually enforces, because they are filled in from its settings.
"""

from __future__ import annotations

from typing import Any

from assistant import __version__


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _json_body(ref: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": ref}}}}


def openapi_document(settings: Any) -> dict[str, Any]:
    errors = {
        "400": _error("Malformed request (bad JSON, unreadable WAV)"),
        "401": _error("Missing or wrong bearer token"),
        "413": _error("Body, text or audio over the cap"),
        "415": _error("Wrong Content-Type"),
        "422": _error("Well-formed but invalid fields"),
        "503": _error("The model this endpoint needs is not loaded"),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "assistant",
            "version": __version__,
            "description": "Local voice assistant: its resident Whisper and TTS models and its intents, over HTTP. "
                           "Loopback only by default; a bearer token is required on any other address.",
        },
        "security": [{"bearer": []}] if settings.token else [],
        "paths": {
            "/v1/transcribe": {"post": {
                "summary": "Transcribe a WAV file with the resident Whisper model",
                "description": "Plain transcription (one free decode over the whole window) by default. With "
                               "commands=true the audio is recognised as the listen loop hears a command (guided "
                               "by the grammar or free, as the service is set up) and the answer says which pass "
                               "decided (`path`: guided, short or full), the guided `confidence` and the command "
                               "it names (never run: use /v1/intent for that).",
                "parameters": [{"name": "prompt", "in": "query", "required": False, "schema": {"type": "string"},
                                "description": "Initial prompt for Whisper (vocabulary hints; plain transcription only)"},
                               {"name": "commands", "in": "query", "required": False, "schema": {"type": "boolean", "default": False},
                                "description": "Recognise a command with the service's recognition policy"}],
                "requestBody": {"required": True, "content": {"audio/wav": {"schema": {
                    "type": "string", "format": "binary",
                    "description": f"PCM or float WAV, any rate and channel count; at most {settings.max_audio_bytes} bytes "
                                   f"and {settings.max_audio_seconds:.0f} s"}}}},
                "responses": {"200": {"description": "Transcript", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Transcript"}}}}, **errors},
            }},
            "/v1/speak": {"post": {
                "summary": "Speak text: a WAV, streamed (chunked, sizes 0xFFFFFFFF) when the engine streams",
                "requestBody": _json_body("#/components/schemas/SpeakRequest"),
                "responses": {"200": {"description": "16-bit mono WAV", "content": {"audio/wav": {
                    "schema": {"type": "string", "format": "binary"}}}}, **errors},
            }},
            "/v1/intent": {"post": {
                "summary": "Match text against the intents; with run=true also run the handler",
                "description": "An intent marked `confirm:` in commands.yaml (a risky one, such as clearing the "
                               "shopping list) is not run on run=true alone: the answer carries "
                               "`needs_confirmation` with the question to ask, and no `outcome`. Ask your user, "
                               "then send the same request with confirmed=true to run it.",
                "requestBody": _json_body("#/components/schemas/IntentRequest"),
                "responses": {"200": {"description": "The match (intent null when none)", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/IntentResult"}}}}, **errors},
            }},
            "/v1/voices": {"get": {"summary": "TTS engines and their voices",
                                   "responses": {"200": {"description": "Engines and voices",
                                                         "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/v1/timers": {"get": {"summary": "Pending timers, soonest first (they survive restarts)",
                                   "responses": {"200": {"description": "Timers", "content": {"application/json": {
                                       "schema": {"$ref": "#/components/schemas/Timers"}}}},
                                       "503": _error("No handler dispatcher in this service")}}},
            "/v1/health": {"get": {"summary": "Models loaded, microphone state, last error, uptime",
                                   "responses": {"200": {"description": "Health", "content": {"application/json": {
                                       "schema": {"$ref": "#/components/schemas/Health"}}}}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics (text format 0.0.4)",
                                 "responses": {"200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "properties": {
                    "status": {"type": "integer"}, "code": {"type": "string"}, "message": {"type": "string"}}}}},
                "Transcript": {"type": "object", "properties": {
                    "text": {"type": "string"}, "segments": {"type": "array", "items": {"type": "object"},
                                                             "description": "Plain transcription only"},
                    "duration_ms": {"type": "number"}, "audio_seconds": {"type": "number"},
                    "path": {"type": "string", "enum": ["guided", "short", "full"],
                             "description": "Which pass decided: a guided grammar sentence, the short-context free pass, the full window"},
                    "confidence": {"type": ["number", "null"], "description": "The guided sentence's confidence 0..1 (null: no guided decode ran)"},
                    "intent": {"type": ["string", "null"], "description": "commands=true: the command heard, null when none"},
                    "slots": {"type": "object"}, "exact": {"type": ["boolean", "null"]},
                    "passes": {"type": "integer", "description": "commands=true: Whisper passes behind the result"}}},
                "SpeakRequest": {"type": "object", "required": ["text"], "properties": {
                    "text": {"type": "string", "maxLength": settings.max_text_chars},
                    "voice": {"type": "string"}, "engine": {"type": "string", "enum": ["auto", "tortoise", "piper", "espeak"]}}},
                "IntentRequest": {"type": "object", "required": ["text"], "properties": {
                    "text": {"type": "string", "maxLength": settings.max_text_chars}, "run": {"type": "boolean", "default": False},
                    "confirmed": {"type": "boolean", "default": False,
                                  "description": "With run=true: the user has confirmed an intent marked `confirm:`; "
                                                 "without it such an intent answers needs_confirmation and does not run"}}},
                "IntentResult": {"type": "object", "properties": {
                    "text": {"type": "string"}, "intent": {"type": ["string", "null"]}, "slots": {"type": "object"},
                    "exact": {"type": ["boolean", "null"]},
                    "needs_confirmation": {"type": "object", "description": "Present when run=true was not run because "
                                           "the intent asks first: resend with confirmed=true", "properties": {
                                               "question": {"type": "string", "description": "What to ask the user"}}},
                    "outcome": {"type": "object", "properties": {
                        "ok": {"type": "boolean"}, "reply": {"type": ["string", "null"]}, "error": {"type": ["string", "null"]}}}}},
                "Timers": {"type": "object", "required": ["timers"], "properties": {"timers": {"type": "array", "items": {
                    "type": "object", "required": ["id", "label", "due", "seconds_left"], "properties": {
                        "id": {"type": "integer"},
                        "label": {"type": "string", "description": "The timer's length as said, e.g. '40 minutes'"},
                        "intent": {"type": ["string", "null"], "description": "The intent that set it"},
                        "due": {"type": "string", "format": "date-time", "description": "When it fires (UTC)"},
                        "seconds_left": {"type": "number"},
                        "seconds": {"type": "number", "description": "Its whole length"}}}}}},
                "Health": {"type": "object", "properties": {
                    "status": {"type": "string", "enum": ["ok", "degraded", "starting", "stopping"]},
                    "uptime_seconds": {"type": "number"}, "models": {"type": "object"}, "microphone": {"type": "object"},
                    "listen_loop": {"type": "object"}, "commands": {"type": "object"},
                    "state": {"type": "object", "description": "The durable store: its path, and state files set aside "
                                                            "this run because they could not be read"},
                    "last_error": {"type": ["object", "null"]}}},
            },
        },
    }
