/**
 * The ABI names under their old path, for tests written before ring/abi.ts existed. Source files
 * import ring/abi.ts (the table) and ring/prep.ts (the SQE encodings) directly.
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
