"""Names of FreeSWITCH channel variables, CDR elements and xml_curl form fields.

Only names the adapters read or the sidecar sets live here; values are wire spellings.
"""

from typing import Final

# --- CDR document structure (mod_xml_cdr) -------------------------------------------------
CDR_ROOT: Final = "cdr"
CDR_CORE_UUID_ATTR: Final = "core-uuid"
CDR_SWITCHNAME_ATTR: Final = "switchname"
CDR_CHANNEL_DATA: Final = "channel_data"
CDR_VARIABLES: Final = "variables"
CDR_CALLFLOW: Final = "callflow"
CDR_CALLER_PROFILE: Final = "caller_profile"
CDR_TIMES: Final = "times"
# Children of <caller_profile> naming the other channels of a bridge/originate.
CDR_ORIGINATOR: Final = "originator"
CDR_ORIGINATOR_CALLER_PROFILE: Final = "originator_caller_profile"
CDR_ORIGINATEE: Final = "originatee"
CDR_ORIGINATEE_CALLER_PROFILE: Final = "originatee_caller_profile"
CDR_ORIGINATION: Final = "origination"
CDR_ORIGINATION_CALLER_PROFILE: Final = "origination_caller_profile"
# <times> children (plain microsecond epochs, 0 when the event never happened).
TIMES_CREATED: Final = "created_time"
TIMES_ANSWERED: Final = "answered_time"
TIMES_HANGUP: Final = "hangup_time"

# mod_xml_cdr POST form field and query parameter.
CDR_FORM_FIELD: Final = "cdr"
CDR_QUERY_UUID: Final = "uuid"
CDR_A_LEG_PREFIX: Final = "a_"

# --- channel variables / caller profile fields --------------------------------------------
UUID: Final = "uuid"
CALL_UUID: Final = "call_uuid"
DIRECTION: Final = "direction"
CHANNEL_NAME: Final = "channel_name"
CALLER_ID_NUMBER: Final = "caller_id_number"
CALLER_ID_NAME: Final = "caller_id_name"
CALLEE_ID_NUMBER: Final = "callee_id_number"
ANI: Final = "ani"
DESTINATION_NUMBER: Final = "destination_number"
CONTEXT: Final = "context"
CHANNEL_CID_FLIPPED: Final = "channel_cid_flipped"

# Who is calling (sidecar/freeswitch/caller_facts.py says which of them the caller can write).
ACCOUNTCODE: Final = "accountcode"
SIP_AUTHORIZED: Final = "sip_authorized"
SIP_AUTH_USERNAME: Final = "sip_auth_username"
SIP_AUTH_REALM: Final = "sip_auth_realm"
DOMAIN_NAME: Final = "domain_name"
SIP_NETWORK_IP: Final = "sip_network_ip"
SIP_RECEIVED_IP: Final = "sip_received_ip"
SIP_H_X_BILLING_ACCOUNT: Final = "sip_h_X-Billing-Account"

START_UEPOCH: Final = "start_uepoch"
ANSWER_UEPOCH: Final = "answer_uepoch"
END_UEPOCH: Final = "end_uepoch"
BILLUSEC: Final = "billusec"
BILLSEC: Final = "billsec"
HANGUP_CAUSE: Final = "hangup_cause"
HANGUP_CAUSE_Q850: Final = "hangup_cause_q850"
LAST_APP: Final = "last_app"

# Variables pointing at the other channels of the same call.
OTHER_LOOPBACK_LEG_UUID: Final = "other_loopback_leg_uuid"
BRIDGE_UUID: Final = "bridge_uuid"
SIGNAL_BOND: Final = "signal_bond"
LAST_BRIDGE_TO: Final = "last_bridge_to"
ORIGINATOR: Final = "originator"
ORIGINATING_LEG_UUID: Final = "originating_leg_uuid"
LOOPBACK_FROM_UUID: Final = "loopback_from_uuid"

# Variables the dialplan sets on behalf of the sidecar.
HANGUP_AFTER_BRIDGE: Final = "hangup_after_bridge"
EXECUTE_ON_ANSWER: Final = "execute_on_answer"
APOLO_PREFIX: Final = "apolo_"
APOLO_RESULT: Final = "apolo_result"
APOLO_REASON: Final = "apolo_reason"
APOLO_ACCOUNT: Final = "apolo_account"
APOLO_MAX_DURATION: Final = "apolo_max_duration"
APOLO_RATE: Final = "apolo_rate"
APOLO_RESERVATION_ID: Final = "apolo_reservation_id"
APOLO_AUTHORIZED_VALUE: Final = "authorized"

# --- mod_xml_curl request form fields ------------------------------------------------------
XC_HOSTNAME: Final = "hostname"
# every event FreeSWITCH sends carries switch_core_get_switchname(): switch.conf.xml's
# "switchname", else the host name (the same value as a CDR's <cdr switchname=...>)
XC_SWITCHNAME: Final = "FreeSWITCH-Switchname"
XC_SECTION: Final = "section"
XC_CORE_UUID: Final = "Core-UUID"
XC_UNIQUE_ID: Final = "Unique-ID"
XC_CALL_DIRECTION: Final = "Call-Direction"
XC_CALLER_CALLER_ID_NUMBER: Final = "Caller-Caller-ID-Number"
XC_CALLER_ANI: Final = "Caller-ANI"
XC_CALLER_DESTINATION_NUMBER: Final = "Caller-Destination-Number"
XC_HUNT_DESTINATION_NUMBER: Final = "Hunt-Destination-Number"
XC_CALLER_CONTEXT: Final = "Caller-Context"
XC_HUNT_CONTEXT: Final = "Hunt-Context"
XC_VARIABLE_PREFIX: Final = "variable_"
XC_SECTION_DIALPLAN: Final = "dialplan"
