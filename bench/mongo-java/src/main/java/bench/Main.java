package bench;

import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import java.util.List;

/**
 * Binds mongo-java-server's in-memory backend to 127.0.0.1:<port> and runs until killed.
 *
 * <p>Its newest built-in version is MongoDB 4.0 (wire version 7), but the Node.js driver under mongoose 8
 * requires wire version 8 (MongoDB 4.2): the server announces 4.2 here. Only what the connector uses
 * matters for the comparison, and the bench fails loudly if a command is missing.
 */
public final class Main {
  private static final MongoVersion MONGO_4_2 =
      new MongoVersion() {
        @Override
        public List<Integer> getVersionArray() {
          return List.of(4, 2, 0);
        }

        @Override
        public int getWireVersion() {
          return 8;
        }
      };

  public static void main(String[] args) throws Exception {
    int port = Integer.parseInt(args[0]);
    MongoServer server = new MongoServer(new MemoryBackend().version(MONGO_4_2));
    server.bind("127.0.0.1", port);
    System.out.println("listening on " + port);
    Runtime.getRuntime().addShutdownHook(new Thread(server::shutdownNow));
    Thread.currentThread().join();
  }
}
