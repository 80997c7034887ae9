/**
 * The ABI names the socket modules import (connection, listener, connect, udp, the service).
 * The table itself is ring/abi.ts; these files still import it from here until their own
 * refactor (the Transport split) moves them onto ring/abi.ts and ring/prep.ts directly.
 */
export {
  CqeFlag,
  FILE_INDEX_ALLOC,
  IOPRIO_ACCEPT_MULTISHOT,
  IOPRIO_RECV_MULTISHOT,
  MSG_NOSIGNAL,
  Op,
  OpName,
  putU64,
  SOCKET_URING_OP_SETSOCKOPT,
  SqeFlag,
  W
} from "./ring/abi.js"
