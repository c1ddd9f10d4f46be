"""Inbound processing between the end of DATA and the 250 reply."""

from postel.pipeline.inbound import (
    InboundDelivery,
    InboundEnvelope,
    MailLoop,
    Recipient,
    StructureTooLarge,
)

__all__ = ["InboundDelivery", "InboundEnvelope", "MailLoop", "Recipient", "StructureTooLarge"]
