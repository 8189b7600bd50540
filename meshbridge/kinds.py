"""The kinds of expectation the store tracks for a message (defined once; the ITK service sets them)."""

INF = "inf-ack"  # an infrastructure ack is due from the recipient (outbound ITK)
BUS = "bus-ack"  # a business ack is due from the recipient (outbound ITK)
BUS_OWED = "bus-ack-owed"  # we owe the sender our business ack (inbound ITK)
