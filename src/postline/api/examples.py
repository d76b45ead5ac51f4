"""Example requests and answers for the OpenAPI document, one per channel.

Every send example is a body the API accepts as it stands (a unit test
validates each against `MessageCreate`), so a reader may paste any of them
into `/docs` or curl. The email attachment is real base64 ("Booking 4711").
"""

from __future__ import annotations

from typing import Any

SMS: dict[str, Any] = {
    "from": "+15551234567",
    "to": "+15559876543",
    "type": "sms",
    "body": "Your booking 4711 is confirmed.",
}
MMS: dict[str, Any] = {
    "from": "+15551234567",
    "to": "+15559876543",
    "type": "mms",
    "body": "Your boarding pass",
    "attachments": ["https://files.example.com/passes/4711.png"],
}
WHATSAPP: dict[str, Any] = {
    "from": "whatsapp:+15551234567",
    "to": "whatsapp:+15559876543",
    "type": "whatsapp",
    "body": "Your booking 4711 is confirmed.",
    "ordering_key": "customer-42",
    "metadata": {"booking": 4711},
}
EMAIL: dict[str, Any] = {
    "from": "Bookings <bookings@example.com>",
    "to": "ada@example.org",
    "type": "email",
    "subject": "Booking 4711 confirmed",
    "body": "Your booking 4711 is confirmed. The receipt is attached.",
    "html": "<p>Your booking <b>4711</b> is confirmed. The receipt is attached.</p>",
    "attachments": [
        {"filename": "receipt.txt", "content_type": "text/plain", "content": "Qm9va2luZyA0NzEx"}
    ],
    "ordering_key": "customer-42",
}
SCHEDULED: dict[str, Any] = {
    **SMS,
    "body": "Reminder: your stay begins tomorrow.",
    "send_at": "2030-06-01T09:00:00Z",
    "callback_url": "https://hooks.example.com/postline",
}

SEND: dict[str, dict[str, Any]] = {
    "sms": {"summary": "SMS", "value": SMS},
    "mms": {"summary": "MMS with one picture (up to 10 URLs)", "value": MMS},
    "whatsapp": {"summary": "WhatsApp, in the order of its key", "value": WHATSAPP},
    "email": {"summary": "Email with text, HTML and an attachment", "value": EMAIL},
    "scheduled": {"summary": "Scheduled SMS with a status callback", "value": SCHEDULED},
}

BATCH: dict[str, dict[str, Any]] = {
    "all_channels": {
        "summary": "One message of each channel",
        "value": {"messages": [SMS, MMS, WHATSAPP, EMAIL]},
    }
}

BATCH_RESULT: dict[str, Any] = {
    "results": [
        {"index": 0, "id": "0f8e3a52-5d0b-4cf3-9b59-3f6c2b8f1a10", "status": "pending"},
        {
            "index": 1,
            "error": {
                "code": "validation_error",
                "message": "attachments: mms takes 1 to 10 attachment URLs",
                "details": [
                    {
                        "loc": ["attachments"],
                        "msg": "mms takes 1 to 10 attachment URLs",
                        "type": "send_rule",
                    }
                ],
            },
        },
    ]
}

MESSAGE: dict[str, Any] = {
    "id": "0f8e3a52-5d0b-4cf3-9b59-3f6c2b8f1a10",
    "status": "delivered",
    **{key: SMS[key] for key in ("type", "from", "to", "body")},
    "subject": None,
    "html": None,
    "attachments": [],
    "ordering_key": "+15559876543",
    "send_at": None,
    "metadata": {},
    "callback_url": None,
    "attempts": 1,
    "error": None,
    "provider": "twilio",
    "provider_message_id": "SM0f8e3a525d0b4cf39b593f6c2b8f1a10",
    "next_attempt_at": None,
    "created_at": "2030-06-01T09:00:00.120000Z",
    "updated_at": "2030-06-01T09:00:02.480000Z",
    "sent_at": "2030-06-01T09:00:00.310000Z",
    "delivered_at": "2030-06-01T09:00:02.480000Z",
}

EVENTS: list[dict[str, Any]] = [
    {
        "status": "pending",
        "at": "2030-06-01T09:00:00.120000Z",
        "attempt": 0,
        "error": None,
        "detail": "accepted",
    },
    {
        "status": "sending",
        "at": "2030-06-01T09:00:00.150000Z",
        "attempt": 1,
        "error": None,
        "detail": None,
    },
    {
        "status": "sent",
        "at": "2030-06-01T09:00:00.310000Z",
        "attempt": 1,
        "error": None,
        "detail": None,
    },
    {
        "status": "delivered",
        "at": "2030-06-01T09:00:02.480000Z",
        "attempt": 1,
        "error": None,
        "detail": "receipt from twilio: delivered",
    },
]
