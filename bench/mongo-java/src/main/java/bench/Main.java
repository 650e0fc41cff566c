package bench;

import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.ServerVersion;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;

/** Binds mongo-java-server's in-memory backend to 127.0.0.1:<port> and runs until killed. */
public final class Main {
  public static void main(String[] args) throws Exception {
    int port = Integer.parseInt(args[0]);
    MongoServer server = new MongoServer(new MemoryBackend().version(ServerVersion.MONGO_4_0));
    server.bind("127.0.0.1", port);
    System.out.println("listening on " + port);
    Runtime.getRuntime().addShutdownHook(new Thread(server::shutdownNow));
    Thread.currentThread().join();
  }
}
