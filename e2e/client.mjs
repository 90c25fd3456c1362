// A phoenix client in its own process, so that a test can kill it: it
// joins chat:lobby as argv[3], with the session token argv[4] if given,
// prints "joined", and waits.
import {Socket} from "phoenix"
import WebSocket from "ws"

const [socketURL, name, session] = process.argv.slice(2)
const params = session ? {name, session} : {name}
const socket = new Socket(socketURL, {transport: WebSocket, params})
socket.connect()
socket.channel("chat:lobby").join()
  .receive("ok", () => console.log("joined"))
  .receive("error", err => { console.error("join failed", err); process.exit(1) })
